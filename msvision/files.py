"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one. A write that
does not fit, or fails on a full disk, quota or I/O error, is one MsvisionError naming the file, the bytes it needs
and the bytes free; its temporary file is removed at once."""
import contextlib
import errno
import fcntl
import os
import shutil
import time

from msvision.errors import MsvisionError

DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO)


def cache_folder():
    """msvision's one cache folder: MSVISION_CACHE, else ~/.cache/msvision (split indexes, demo data, weights)."""
    return os.path.expanduser(os.environ.get("MSVISION_CACHE") or "~/.cache/msvision")


class WriteFailed(MsvisionError):
    """A write that did not fit or failed on the disk (the message says which file and how much space)."""


def _size(count):
    return f"{count / 2 ** 20:.1f} MB" if count >= 2 ** 20 else f"{count / 2 ** 10:.1f} KB"


def mount_point(path):
    """The mount point of the filesystem holding path."""
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def free_bytes(folder):
    """Bytes a non-privileged writer may still use on folder's filesystem."""
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def _failure(path, needed, err=None):
    folder = os.path.dirname(os.path.abspath(path))
    free = free_bytes(folder)
    if err is not None and err.errno == errno.EIO:
        return WriteFailed(f"cannot write '{path}': input/output error on {mount_point(folder)} "
                           f"({_size(free)} free)")
    wanted = f"{_size(needed)} needed, " if needed else ""
    return WriteFailed(f"no space left for '{path}' ({wanted}{_size(free)} free on {mount_point(folder)})")


@contextlib.contextmanager
def atomic_path(path, hidden=False, suffix="", durable=False, needed=None):
    """Yield a temporary path next to `path` (`.name.tmpPID` when hidden, plus suffix); when the block succeeds the
    file is renamed onto `path` (after an fsync when durable: checkpoints, whose loss costs training; an fsync can
    take seconds on a busy disk), when it fails it is removed. With `needed` (bytes), the free space is checked
    first. A SIGKILL leaves the temporary, which CheckpointManager(clean_partial=True) removes on the next start."""
    folder, name = os.path.split(os.path.abspath(path))
    if needed and free_bytes(folder) < needed:
        raise _failure(path, needed)
    tmp = os.path.join(folder, f"{'.' if hidden else ''}{name}.tmp{os.getpid()}{suffix}")
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        for leftover in (tmp, os.path.splitext(tmp)[0] + ".tmp"):  # MindSpore's own temporary of a failed save
            with contextlib.suppress(OSError):
                os.remove(leftover)
        if isinstance(err, OSError) and err.errno in DISK_ERRORS:
            raise _failure(path, needed, err) from None
        raise


def write_text(path, text, newline=None, durable=False):
    """Write text to path atomically."""
    data = text.encode("utf-8")
    with atomic_path(path, durable=durable, needed=len(data)) as tmp:
        with open(tmp, "w", encoding="utf-8", newline=newline) as handle:
            handle.write(text)


def link_or_copy(source, target):
    """Make `target` a hard link to `source` (atomically replacing it); a copy where the filesystem cannot link.
    Returns 'linked' or 'copied'."""
    folder, name = os.path.split(os.path.abspath(target))
    tmp = os.path.join(folder, f".{name}.tmp{os.getpid()}")
    try:
        os.link(source, tmp)
        how = "linked"
    except OSError:
        with atomic_path(tmp, needed=os.path.getsize(source)) as copy_tmp:
            shutil.copyfile(source, copy_tmp)
        how = "copied"
    try:
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return how


def wait_for_lock(path, timeout, waiting_for, hint):
    """An exclusive flock on path (released when the returned handle closes, or the process dies); after `timeout`
    seconds of waiting, a MsvisionError naming what was awaited."""
    handle = open(path, "a")
    deadline = time.time() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.time() > deadline:
                handle.close()
                raise MsvisionError(f"timed out after {timeout:.0f} s waiting for another process to {waiting_for} "
                                    f"(lock {path}); {hint}") from None
            time.sleep(0.1)


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
