"""What the entry points share: user mistakes as one 'error: ...' line with exit code 2 (errors.run_cli), and one
rule for output paths (files.check_output: the folder must exist and be writable; nothing is created). Both live at
the bottom of the import order, so that any package's `__main__` can use them."""
from msvision.errors import run_cli
from msvision.files import check_output

__all__ = ["run_cli", "check_output"]
