"""Published weights: where each reference publishes its files, and fetching one once, verified, into the cache.

For a model and a published file the converted checkpoint is <cache>/weights/<file>.<model>.ckpt; once it exists
nothing touches the network. Otherwise, under a per-file lock (one process per node fetches, the others wait, as
for the split index): the published file is taken from MSVISION_WEIGHTS (a folder holding files under their
published names; hub files under their repository's path) if it is there, else downloaded into the cache (timm's
hub files through huggingface_hub when it is installed, which honours HF_ENDPOINT; else plain HTTPS), to a
temporary name renamed only after its size and sha256 (or the published prefix of it) match; then converted by the
caller's function (the model factory's). MSVISION_WEIGHTS_TABLE (a JSON file {"model:source": {"url": ...,
"sha256": ..., "size": ...}}) replaces entries of the table (tests, mirrors).
"""
import dataclasses
import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Optional

from msvision.errors import MsvisionError
from msvision.files import cache_folder, wait_for_lock

CHUNK = 1 << 20
TORCHVISION_URL = "https://download.pytorch.org/models/"
MINDCV_URL = "https://download-mindspore.osinfra.cn/toolkits/mindcv/"
E100_URL = "https://f002.backblazeb2.com/file/1e100-public/"


@dataclasses.dataclass(frozen=True)
class PublishedWeights:
    """One published weights file of a model: where it is, how to verify it, its layout, reported accuracy."""
    source: str  # timm, torchvision, mindcv or 1e100 (also the file's parameter layout)
    file: str  # the file name as published
    url: Optional[str] = None  # direct URL (None: a hub file)
    hub_id: Optional[str] = None  # huggingface hub repository (timm)
    sha256: Optional[str] = None  # full digest, or the published prefix of it
    size: Optional[int] = None  # bytes, where published
    top1: Optional[float] = None
    top5: Optional[float] = None
    published_at: str = ""


def torchvision_file(name, digest, top1, top5):
    """torchvision's file of a model: the 8 hex digits in its name are the sha256 prefix."""
    file = f"{name}-{digest}.pth"
    return PublishedWeights("torchvision", file, TORCHVISION_URL + file, sha256=digest, top1=top1, top5=top5,
                            published_at="torchvision.models weights (ImageNet-1K acc@1 / acc@5)")


def timm_file(name, tag):
    """timm's hub file of a model (timm publishes no hash or size; the hub verifies its own files)."""
    return PublishedWeights("timm", "model.safetensors", hub_id=f"timm/{name}.{tag}",
                            published_at="timm results/results-imagenet.csv")


def e100_file(file, size, digest, top1, top5):
    """A 1e100 VoVNet file (size and sha256 from its Git LFS pointer)."""
    return PublishedWeights("1e100", file, E100_URL + file, sha256=digest, size=size, top1=top1, top5=top5,
                            published_at="1e100/vovnet_v2 README")


def mindcv_file(family, file, top1):
    """A MindCV file: no digest is published (the hex digits in its name are not documented as one)."""
    return PublishedWeights("mindcv", file, f"{MINDCV_URL}{family}/{file}", top1=top1,
                            published_at=f"MindCV configs/{family} README (910v2)")


def select(model, entries, source=None):
    """The PublishedWeights of `model` among `entries` (the first unless `source` names another), with
    MSVISION_WEIGHTS_TABLE's replacements."""
    if not entries:
        raise MsvisionError(f"no published weights for {model} (models with weights: see the README's table)")
    if source in (None, True, "true"):
        entry = entries[0]
    else:
        matching = [e for e in entries if e.source == source]
        if not matching:
            raise MsvisionError(f"no {source} weights for {model} (sources: {', '.join(e.source for e in entries)})")
        entry = matching[0]
    table = os.environ.get("MSVISION_WEIGHTS_TABLE")
    if table:
        with open(table, encoding="utf-8") as handle:
            entry = dataclasses.replace(entry, **json.load(handle).get(f"{model}:{entry.source}", {}))
    return entry


def _url(entry):
    if entry.url:
        return entry.url
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{entry.hub_id}/resolve/main/{entry.file}"


def _local_name(entry):
    """The published file's name in the cache (hub files are all model.safetensors: prefixed by the repository)."""
    return entry.file if entry.url else f"{entry.hub_id.replace('/', '--')}--{entry.file}"


def _offline_name(entry):
    """Where the file goes under MSVISION_WEIGHTS: its published name (hub files under their repository's path,
    e.g. timm/ese_vovnet39b.ra_in1k/model.safetensors)."""
    return entry.file if entry.url else f"{entry.hub_id}/{entry.file}"


def _verify(path, entry, origin):
    """Size and sha256 (full, or the published prefix) of a fetched file, else a MsvisionError (file removed when
    it was our download)."""
    size = os.path.getsize(path)
    problem = None
    if entry.size is not None and size != entry.size:
        problem = f"{size} bytes, published {entry.size}"
    elif entry.sha256:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(CHUNK), b""):
                digest.update(block)
        got = digest.hexdigest()
        if not got.startswith(entry.sha256):
            problem = f"sha256 {got}, published {entry.sha256}"
    if problem:
        raise MsvisionError(f"{origin} does not match its published file ({problem})")


def _progress(done, total, name):
    """A progress line on stdout (stderr is for the one line of an error)."""
    if total:
        sys.stdout.write(f"\rdownloading {name}: {100 * done // total}% of {total / 2 ** 20:.1f} MB")
        sys.stdout.flush()


def _download(url, target, entry, quiet):
    """url -> target through a temporary name; the temporary is removed on any failure."""
    partial = f"{target}.partial{os.getpid()}"
    try:
        if entry.hub_id and not entry.url and _hub_download(entry, partial):
            pass
        else:
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                total, done = int(response.headers.get("Content-Length") or 0), 0
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    done += len(block)
                    if not quiet and total > 16 * CHUNK:
                        _progress(done, total, entry.file)
                if not quiet and total > 16 * CHUNK:
                    sys.stdout.write("\n")
                if total and done != total:
                    raise MsvisionError(f"the download of {url} ended after {done} of {total} bytes; nothing was "
                                        f"kept: run again")
        _verify(partial, entry, url)
        os.replace(partial, target)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err.__class__.__name__
        raise MsvisionError(f"cannot download {url} ({reason}); without network, place {_offline_name(entry)} in a "
                            f"folder named by MSVISION_WEIGHTS, or at {target}") from None
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _hub_download(entry, partial):
    """The hub file through huggingface_hub (its own checks; HF_ENDPOINT for mirrors), copied to `partial`; False
    when huggingface_hub is not installed."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return False
    import shutil

    shutil.copyfile(hf_hub_download(entry.hub_id, entry.file), partial)
    return True


def converted_checkpoint(model, entry, convert, quiet=None):
    """The path of `model`'s published file `entry` converted to an msvision checkpoint: fetched and converted once
    (see the module docstring). convert(raw_path, checkpoint_path) writes the checkpoint."""
    folder = os.path.join(cache_folder(), "weights")
    converted = os.path.join(folder, f"{_local_name(entry)}.{model}.ckpt")
    if os.path.isfile(converted):
        return converted
    quiet = os.environ.get("RANK_ID", "0") != "0" if quiet is None else quiet  # under msrun: rank 0 speaks
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise MsvisionError(f"cache folder '{folder}' cannot be created ({err.strerror}): set MSVISION_CACHE to a "
                            f"writable folder") from None
    lock = wait_for_lock(converted + ".lock", float(os.environ.get("MSVISION_DOWNLOAD_TIMEOUT", 3600)),
                         f"fetch {entry.file}", "raise MSVISION_DOWNLOAD_TIMEOUT for slow networks")
    try:
        if os.path.isfile(converted):  # another process of this node did it while we waited
            return converted
        offline = os.path.join(os.environ.get("MSVISION_WEIGHTS", ""), _offline_name(entry))
        if os.environ.get("MSVISION_WEIGHTS") and os.path.isfile(offline):
            _verify(offline, entry, offline)
            raw = offline
        else:
            raw = os.path.join(folder, _local_name(entry))
            if not os.path.isfile(raw):
                url = _url(entry)
                if not quiet:
                    print(f"fetching {entry.source} weights of {model} from {url}", flush=True)
                _download(url, raw, entry, quiet)
        convert(raw, converted)
    finally:
        lock.close()
    return converted
