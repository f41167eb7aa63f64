"""Shared code of the benchmark scripts (scripts/bench, scripts/compare, bench/*).

Every script finds this package with one line, the same wherever it lives one folder below the
source tree (scripts/, bench/, tests/):

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "scripts"))
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")  # where scripts/bench builds, and the scripts look
