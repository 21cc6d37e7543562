"""What the entry points share: user mistakes as one 'error: ...' line with exit code 2, and one rule for output
paths (the folder must exist and be writable; nothing is created)."""
import os
import sys

from msvision.errors import MsvisionError


def run_cli(main, argv=None):
    """Run main(argv); a MsvisionError prints one line to stderr and exits 2."""
    try:
        return main(argv)
    except MsvisionError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def check_output(path, what=""):
    """The one output-path rule of every CLI: `path` is a file name in an existing, writable folder (a missing folder
    is a mistake to report, not one to create); checked before any work. what: e.g. "the metrics"."""
    named = f"cannot write {what + ' ' if what else ''}'{path}'"
    if os.path.isdir(path):
        raise MsvisionError(f"{named}: it is a folder (expected a file path)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MsvisionError(f"{named}: folder '{folder}' does not exist")
    if not os.access(folder, os.W_OK):
        raise MsvisionError(f"{named}: folder '{folder}' is not writable")
