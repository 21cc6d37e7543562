"""Export a model to MindIR (mindspore.export), ONNX (mindspore.onnx.export, then opset 13 with msvision's metadata)
or AIR (Ascend only)."""
import os
import tempfile

import numpy as np
import mindspore as ms

from msvision.errors import MsvisionError
from msvision.eval.onnx_file import deploy_modules, finish_onnx
from msvision.models.reparam import deployed

FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}


def check_format(file_format, device_target):
    """A one-line error for a format this machine cannot write (before anything is built or written)."""
    if file_format not in FORMATS:
        raise MsvisionError(f"--format must be one of {', '.join(FORMATS)}, got '{file_format}'")
    if file_format == "AIR" and device_target != "Ascend":
        raise MsvisionError(f"--format AIR is written by MindSpore on an Ascend machine only (this one runs "
                            f"{device_target}): export ONNX or MINDIR here, or run this command where CANN is installed")
    if file_format == "ONNX":
        deploy_modules()


def output_path(output, file_format):
    """The file an export to `output` (with or without its suffix) writes."""
    suffix = FORMATS[file_format]
    return output if output.endswith(suffix) else output + suffix


def export_model(net, image_size, file_format, output, metadata=None, batch_size=1):
    """Trace net on a batch_size x 3 x image_size x image_size input and write output (+ format suffix); a RepVGG is
    exported in its fused form (one 3x3 conv per block: no BatchNorm, no branch). ONNX files get opset 13 and
    `metadata` (eval.onnx_file.onnx_metadata). Returns the path written."""
    net = deployed(net.set_train(False))
    path = output_path(output, file_format)
    dummy = ms.Tensor(np.zeros((batch_size, 3, image_size, image_size), np.float32))
    try:
        if file_format == "ONNX":  # mindspore.export's ONNX path is deprecated (it warns on stderr)
            onnx, _ = deploy_modules()
            with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as folder:
                ms.onnx.export(net, dummy, file_name=os.path.join(folder, "graph"))
                proto = onnx.load(os.path.join(folder, "graph.onnx"))
            finish_onnx(proto, path, metadata or {})
        else:
            ms.export(net, dummy, file_name=path[: -len(FORMATS[file_format])], file_format=file_format)
    except (RuntimeError, ValueError, TypeError) as err:
        hint = ("; MindSpore cannot export VGG's adaptive pool to ONNX: export at an --image_size of 32 to 63 or 224 "
                "to 255, where the pool is a copy or the identity") if "AdaptiveAvgPool2D" in str(err) else ""
        raise MsvisionError(f"export to {file_format} failed: {str(err).splitlines()[0]}{hint}") from None
    return path
