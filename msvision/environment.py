"""Checks of the Python environment made when msvision is imported, before MindSpore is."""
import os
import sys

from msvision.errors import MsvisionError


def check_numpy(version=None):
    """MindSpore 2.10 is built against NumPy 1.x: under NumPy 2 its image decoding fails on every file (reported as
    a corrupt image). Raises a MsvisionError naming the fix; in a script (not an interactive session) that error is
    printed as one line and the process exits 2, as the entry points report user mistakes."""
    if version is None:
        import numpy
        version = numpy.__version__
    if int(version.split(".")[0]) < 2:
        return
    if not hasattr(sys, "ps1") and not sys.flags.interactive:
        _report_uncaught_as_one_line()
    raise MsvisionError(f"NumPy {version} is installed, but MindSpore 2.10 needs NumPy < 2 (under NumPy 2 its "
                        f"image decoding fails): pip install 'numpy>=1.25,<2'")


def _report_uncaught_as_one_line():
    previous = sys.excepthook

    def report(kind, error, trace):
        if not issubclass(kind, MsvisionError):
            previous(kind, error, trace)
            return
        print(f"error: {error}", file=sys.stderr, flush=True)
        os._exit(2)  # the import failed: nothing of msvision's is open

    sys.excepthook = report
