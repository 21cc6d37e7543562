"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one."""
import contextlib
import os


@contextlib.contextmanager
def atomic_path(path, hidden=False, suffix="", durable=False):
    """Yield a temporary path next to `path` (`.name.tmpPID` when hidden, plus suffix); when the block succeeds the
    file is renamed onto `path` (after an fsync when durable: checkpoints, whose loss costs training; an fsync can
    take seconds on a busy disk), when it fails it is removed. A SIGKILL leaves the temporary, which
    CheckpointManager(clean_partial=True) removes on the next start."""
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f"{'.' if hidden else ''}{name}.tmp{os.getpid()}{suffix}")
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text(path, text, newline=None, durable=False):
    """Write text to path atomically."""
    with atomic_path(path, durable=durable) as tmp:
        with open(tmp, "w", encoding="utf-8", newline=newline) as handle:
            handle.write(text)
