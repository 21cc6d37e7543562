"""ONNX files as msvision writes and reads them: opset 13 or later, and the model name, preprocessing and class names
in the file's metadata (so evaluating the file needs nothing else). The batch size is the one traced at export (the
VoVNets' padding and squeeze-excitation reshapes carry it)."""
import json
import os

from msvision.errors import MsvisionError
from msvision.files import atomic_path

OPSET = 13  # per-channel QDQ (DequantizeLinear with `axis`) needs 13; MindSpore writes 11
VERSION_KEY = "msvision_version"
TEXT_KEYS = ("model", "interpolation")  # written as plain text; the other values as JSON
METADATA_KEYS = TEXT_KEYS + ("input_size", "crop_pct", "mean", "std", "class_names", "class_counts", "quantization")


def deploy_modules():
    """(onnx, onnxruntime), or a one-line error naming the extra that installs them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise MsvisionError(f"ONNX export and evaluation need the deploy extra ({err.name} is not installed): "
                            f"pip install -e '.[deploy]'") from None
    return onnx, onnxruntime


def onnx_metadata(model, preprocess, class_names=None, class_counts=None):
    """The metadata entries of an exported file: model name, input size, interpolation, crop_pct, mean and std (0..1
    scale), class names and training images per class (JSON values)."""
    size = preprocess["size"]
    return dict(model=model, input_size=[3, size, size], interpolation=preprocess["interpolation"],
                crop_pct=preprocess["crop_pct"], mean=[m / 255 for m in preprocess["mean"]],
                std=[s / 255 for s in preprocess["std"]], class_names=class_names, class_counts=class_counts)


def finish_onnx(proto, path, metadata):
    """Write `proto` to `path` at opset >= OPSET with `metadata` (atomically: a failed write leaves no file)."""
    onnx, _ = deploy_modules()
    opset = max((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), default=0)
    if opset < OPSET:
        proto = onnx.version_converter.convert_version(proto, OPSET)
    del proto.metadata_props[:]
    entries = dict(metadata, **{VERSION_KEY: "1"})
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value if key in TEXT_KEYS + (VERSION_KEY,) else json.dumps(value))
    with atomic_path(path, needed=proto.ByteSize()) as temporary:
        onnx.save(proto, temporary)


def read_metadata(path):
    """The msvision metadata of an ONNX file (None when it has none), values decoded."""
    onnx, _ = deploy_modules()
    if not os.path.isfile(path):
        raise MsvisionError(f"ONNX file not found: '{path}'")
    try:
        proto = onnx.load(path, load_external_data=False)
        if not proto.ir_version or not proto.graph.node:  # protobuf parses many other files without an error
            raise ValueError("no ONNX graph in it")
    except Exception as err:  # onnx raises DecodeError and others for a file that is not ONNX
        raise MsvisionError(f"'{path}' is not an ONNX file: {str(err).splitlines()[0]}") from None
    entries = {entry.key: entry.value for entry in proto.metadata_props}
    if VERSION_KEY not in entries:
        return None
    return {key: entries[key] if key in TEXT_KEYS else json.loads(entries[key]) for key in METADATA_KEYS
            if key in entries}
