"""Export a model to MindIR (mindspore.export) or ONNX (mindspore.onnx.export)."""
import numpy as np
import mindspore as ms

from msvision.errors import MsvisionError
from msvision.models.reparam import deployed

FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}


def export_model(net, image_size, file_format, output, batch_size=1):
    """Trace net on a batch_size x 3 x image_size x image_size input and write output (+ format suffix); a RepVGG
    is exported in its fused form (one 3x3 conv per block: no BatchNorm, no branch)."""
    if file_format not in FORMATS:
        raise MsvisionError(f"--format must be one of {', '.join(FORMATS)}, got '{file_format}'")
    net = deployed(net.set_train(False))
    stem = output[: -len(FORMATS[file_format])] if output.endswith(FORMATS[file_format]) else output
    dummy = ms.Tensor(np.zeros((batch_size, 3, image_size, image_size), np.float32))
    try:
        if file_format == "ONNX":  # mindspore.export's ONNX path is deprecated (it warns on stderr)
            ms.onnx.export(net, dummy, file_name=stem)
        else:
            ms.export(net, dummy, file_name=stem, file_format=file_format)
    except (RuntimeError, ValueError, TypeError) as err:
        hint = ("; MindSpore cannot export VGG's adaptive pool to ONNX: export at an --image_size of 224 to 255, "
                "where the pool is the identity") if "AdaptiveAvgPool2D" in str(err) else ""
        raise MsvisionError(f"export to {file_format} failed: {str(err).splitlines()[0]}{hint}") from None
    return stem + FORMATS[file_format]
