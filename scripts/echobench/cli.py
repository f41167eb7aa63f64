"""Command-line conventions shared by the scripts: bad input gets one line naming the problem
and exit status 2, like echo-server and loadgen."""

import argparse
import sys


class Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"{self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)
