"""Shared wrapper for the command-line entry points: user mistakes become 'error: ...' and exit code 2."""
import sys

from msvision.errors import MsvisionError


def run_cli(main, argv=None):
    """Run main(argv); a MsvisionError prints one line to stderr and exits 2."""
    try:
        return main(argv)
    except MsvisionError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
