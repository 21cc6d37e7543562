"""The one exception type for user mistakes (bad config, data, checkpoint), the command-line parser that raises it,
and how a command line ends on one (run_cli)."""
import argparse
import sys


class MsvisionError(Exception):
    """A user-facing error: the message names what is wrong and what is expected."""


def name_list(names, limit=5):
    """Sorted names for a one-line message: the first `limit`, then how many more."""
    names = sorted(names)
    more = f", ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are MsvisionErrors (one line and exit 2 under cli.run_cli, not usage + error)."""

    def error(self, message):
        raise MsvisionError(message)


def run_cli(main, argv=None):
    """Run main(argv); a MsvisionError prints one line to stderr and exits 2."""
    try:
        return main(argv)
    except MsvisionError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
