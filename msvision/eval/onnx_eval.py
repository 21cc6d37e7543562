"""An exported ONNX file (float32 or int8) as a classifier for eval.metrics.evaluate, through onnxruntime on the CPU;
its metadata stands in for a checkpoint's stored config."""
import numpy as np
import mindspore as ms

from msvision.errors import MsvisionError
from msvision.eval.onnx_file import deploy_modules, read_metadata
from msvision.weights.io import CLASS_COUNTS_KEY, CLASS_NAMES_KEY


class OnnxClassifier:
    """Logits of an ONNX file for an image batch (a MindSpore tensor in, a MindSpore tensor out, as a Cell's), run in
    slices of the batch size the file was traced at (the last slice padded)."""

    def __init__(self, path):
        _, onnxruntime = deploy_modules()
        try:
            self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for an invalid graph
            raise MsvisionError(f"onnxruntime cannot load '{path}': {str(err).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.batch = self.session.get_inputs()[0].shape[0]
        self.batch = self.batch if isinstance(self.batch, int) else 1
        self.num_classes = self.session.get_outputs()[0].shape[-1]

    def set_train(self, mode=True):
        """Evaluation only (the Cell interface evaluate() calls)."""
        if mode:
            raise MsvisionError("an ONNX file is for inference only")
        return self

    def logits(self, images):
        """Logits (numpy) for a float32 N x 3 x S x S array."""
        count = len(images)
        padded = np.concatenate([images, np.zeros((-count % self.batch,) + images.shape[1:], images.dtype)])
        return np.concatenate([self.session.run(None, {self.input_name: padded[i:i + self.batch]})[0]
                               for i in range(0, len(padded), self.batch)])[:count]

    def __call__(self, images):
        return ms.Tensor(self.logits(images.asnumpy()))


def onnx_config(path, model=None):
    """(config values, checkpoint-like state entries) of an ONNX file: the model name and preprocessing from its
    msvision metadata, its class names and counts as a checkpoint stores them. A file without msvision metadata needs
    `model` (its preprocessing is then the model's or the command line's)."""
    metadata = read_metadata(path)
    if metadata is None:
        if not model:
            raise MsvisionError(f"'{path}' has no msvision metadata (model, preprocessing, classes): pass --model "
                                f"to evaluate it with that model's preprocessing")
        return {"model": model}, {}
    config = dict(model=metadata["model"], image_resize=metadata["input_size"][-1],
                  interpolation=metadata["interpolation"], crop_pct=metadata["crop_pct"], mean=metadata["mean"],
                  std=metadata["std"])
    state = {}
    if metadata.get("class_names"):
        state[CLASS_NAMES_KEY] = "\n".join(metadata["class_names"])
    if metadata.get("class_counts"):
        state[CLASS_COUNTS_KEY] = ms.Tensor(np.array(metadata["class_counts"], np.int64))
    return config, state
