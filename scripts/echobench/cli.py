"""Command-line conventions shared by the scripts: bad input gets one line naming the problem
and exit status 2, like echo-server and loadgen."""

import argparse
import sys


class Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"{self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def typed(parse, *args, **kwargs):
    """An argparse type from a parser of echobench.units: its ValueError becomes the one-line
    usage error, naming the option."""
    def convert(text):
        try:
            return parse(text, *args, **kwargs)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e))
    return convert


def list_of(parse, *args, **kwargs):
    """An argparse type for a comma-separated list of values read by `parse`."""
    def convert(text):
        try:
            return [parse(item, *args, **kwargs) for item in text.split(",")]
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"in '{text}': {e}")
    return convert
