"""int8 ONNX by post-training static quantization (onnxruntime, QDQ format), calibrated on images read with exactly
the evaluation preprocessing; the float32-vs-int8 agreement on those images."""
import contextlib
import io
import logging
import os
import tempfile

import numpy as np

from msvision.data.index import IMAGE_EXTENSIONS
from msvision.data.loaders import eval_transforms
from msvision.errors import MsvisionError
from msvision.eval.onnx_eval import OnnxClassifier
from msvision.eval.onnx_file import deploy_modules, finish_onnx
from msvision.eval.predict import read_preprocessed

LOG = logging.getLogger("msvision")
CALIB_METHODS = ("minmax", "entropy", "percentile")


def _images_in(folder):
    return sorted(entry.path for entry in os.scandir(folder) if entry.is_file() and entry.name.endswith(IMAGE_EXTENSIONS))


def calibration_files(calib_dir, count, seed=0):
    """`count` image files of calib_dir (class folders, or images directly in it), drawn seeded and spread across
    the classes: each class's files in a seeded order, the classes taken in turn (a seeded class order)."""
    if not os.path.isdir(calib_dir):
        raise MsvisionError(f"--calib_dir not found: '{calib_dir}' (expected a folder of images or of class folders)")
    folders = sorted(entry.path for entry in os.scandir(calib_dir) if entry.is_dir())
    groups = [files for files in (_images_in(f) for f in folders) if files] or [_images_in(calib_dir)]
    total = sum(len(files) for files in groups)
    if total == 0:
        raise MsvisionError(f"no images in --calib_dir '{calib_dir}' (expected {', '.join(IMAGE_EXTENSIONS[:5])} "
                            f"files, directly or in class folders)")
    if total < count:
        LOG.info("--calib_dir '%s' holds %d images, fewer than --calib_count %d: calibrating on all of them",
                 calib_dir, total, count)
    rng = np.random.RandomState(seed)
    queues = [list(np.array(files)[rng.permutation(len(files))]) for files in groups]
    queues = [queues[i] for i in rng.permutation(len(queues))]
    chosen = []
    while len(chosen) < min(count, total):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(str(queue.pop(0)))
    return chosen


def calibration_images(calib_dir, count, preprocess, seed=0):
    """The calibration batch (count x 3 x size x size, float32) with the eval preprocessing (preprocessing()'s
    dict)."""
    operations = eval_transforms(preprocess)
    return np.stack([read_preprocessed(path, operations) for path in calibration_files(calib_dir, count, seed)])


def quantize_onnx(float_path, int8_path, images, method="minmax", per_channel=True, symmetric=False, metadata=None):
    """Write int8_path: float_path quantized by onnxruntime (QDQ, int8 weights per output channel unless
    per_channel is false, int8 activations, symmetric with `symmetric` (TensorRT's form)) with ranges calibrated on
    `images` by `method`; Conv + BatchNormalization are fused first. metadata: the float file's, plus the settings."""
    onnx, _ = deploy_modules()
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          create_calibrator, quant_pre_process, quantize_static)
    from onnxruntime.quantization.calibrate import save_tensors_data

    class Batches(CalibrationDataReader):
        def __init__(self, name, batch):
            self.batches = iter([{name: images[i:i + batch]} for i in range(0, len(images) - batch + 1, batch)])

        def get_next(self):
            return next(self.batches, None)

    if method not in CALIB_METHODS:
        raise MsvisionError(f"--calib_method must be one of {', '.join(CALIB_METHODS)}, got '{method}'")
    graph_input = onnx.load(float_path, load_external_data=False).graph.input[0]
    batch = graph_input.type.tensor_type.shape.dim[0].dim_value
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(int8_path))) as folder:
        prepared, quantized = os.path.join(folder, "prepared.onnx"), os.path.join(folder, "int8.onnx")
        quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
        reader, cache = Batches(graph_input.name, batch), None
        with contextlib.redirect_stdout(io.StringIO()):  # onnxruntime prints its histogram progress
            if method == "entropy":  # quantize_static's own entropy calibrator has 128 bins for 128 levels: the KL
                # search then has one candidate, the full range (minmax); TensorRT's entropy rule histograms 2048 bins
                calibrator = create_calibrator(prepared, None, os.path.join(folder, "augmented.onnx"), calibrate,
                                               extra_options=dict(num_bins=2048, num_quantized_bins=128))
                calibrator.collect_data(reader)
                reader, cache = None, os.path.join(folder, "ranges.json")
                save_tensors_data(calibrator.compute_data(), cache)
            quantize_static(prepared, quantized, reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=calibrate,
                            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
                            calibration_cache_path=cache)
        proto = onnx.load(quantized)
    settings = dict(calib_method=method, per_channel=per_channel, symmetric_activations=symmetric,
                    calib_count=len(images))
    finish_onnx(proto, int8_path, dict(metadata or {}, quantization=settings))
    return int8_path


def onnx_logits(path, images):
    """Logits of an ONNX file (onnxruntime, CPU) for float32 images (a multiple of its batch size), float64."""
    classifier = OnnxClassifier(path)
    return classifier.logits(images).astype(np.float64)


def agreement(float_path, int8_path, images):
    """Top-1 agreement (percent) and the largest logit difference of the int8 file against the float32 file on
    images, and the largest float32 logit (the scale of that difference)."""
    reference, quantized = onnx_logits(float_path, images), onnx_logits(int8_path, images)
    return dict(top1_agreement=100.0 * float(np.mean(reference.argmax(1) == quantized.argmax(1))),
                max_logit_difference=float(np.abs(reference - quantized).max()),
                largest_logit=float(np.abs(reference).max()))
