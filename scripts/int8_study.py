"""What int8 costs: python scripts/int8_study.py [--work DIR] [--models M ...] [--calib_count N]

Trains each model with the digits demo recipe on the demo digits and on the long-tailed digits of the imbalance study
(one train.py process each), exports it to float32 ONNX (a RepVGG fused), quantizes that file per channel and per
tensor with each calibration method (calibration images drawn from the training split, evaluation preprocessing),
and evaluates every file on the validation split with onnxruntime: top-1, balanced accuracy and the worst class,
with each int8 file's change against float32.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

from msvision.cli import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = {
    "ese_vovnet19b_slim_dw": ("ese_vovnet19b_slim_dw_digits.yaml", []),
    "vgg11_bn": ("vgg11_bn_digits.yaml", []),
    "repvgg_a0": ("ese_vovnet19b_slim_dw_digits.yaml", ["--model", "repvgg_a0"]),  # 8 epochs, SGD 0.1
}


def train(model, data_dir, out_dir):
    """The best checkpoint of one demo-recipe run on data_dir."""
    from msvision.errors import MsvisionError

    recipe, extra = RECIPES[model]
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), "-c", os.path.join(ROOT, "configs", "demo", recipe),
           "--dataset", "imagefolder", "--data_dir", data_dir, "--ckpt_save_dir", out_dir, "--keep_checkpoint_max",
           "1"] + extra
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise MsvisionError(f"training {model} failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return glob.glob(os.path.join(out_dir, "*-best.ckpt"))[0]


def study(model, data_dir, out_dir, calib_count):
    """Rows (form, metrics) for one trained model: float32 ONNX, then each int8 variant."""
    from msvision.config.parse import config_from_text
    from msvision.data.dataset import open_split
    from msvision.data.loaders import preprocessing
    from msvision.eval.export import export_model
    from msvision.eval.metrics import evaluate
    from msvision.eval.onnx_eval import OnnxClassifier
    from msvision.eval.onnx_file import onnx_metadata
    from msvision.eval.predict import model_for_evaluation
    from msvision.eval.quantize import CALIB_METHODS, calibration_images, quantize_onnx
    from msvision.weights.io import CONFIG_KEY, read_checkpoint

    checkpoint = train(model, data_dir, out_dir)
    cfg = config_from_text(read_checkpoint(checkpoint, only=(CONFIG_KEY,))[CONFIG_KEY], checkpoint)
    pre = preprocessing(cfg.model, cfg.image_resize, cfg.interpolation, cfg.crop_pct, cfg.mean, cfg.std)
    net = model_for_evaluation(cfg.model, checkpoint, cfg.num_classes)
    float_path = export_model(net, pre["size"], "ONNX", os.path.join(out_dir, model),
                              onnx_metadata(model, pre, None))
    images = calibration_images(os.path.join(data_dir, "train"), calib_count, pre)
    split = open_split("val", data_dir=data_dir)
    loader = dict(preprocess=dict(model=cfg.model, image_resize=pre["size"], interpolation=cfg.interpolation,
                                  crop_pct=cfg.crop_pct, mean=cfg.mean, std=cfg.std), batch_size=32)
    rows = [("float32", evaluate(OnnxClassifier(float_path), split, **loader))]
    for per_channel in (True, False):
        for method in CALIB_METHODS:
            form = f"int8 {'per-channel' if per_channel else 'per-tensor'} {method}"
            path = os.path.join(out_dir, f"{model}-{form.replace(' ', '-')}.onnx")
            quantize_onnx(float_path, path, images, method, per_channel)
            rows.append((form, evaluate(OnnxClassifier(path), split, **loader)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=None, help="where data, runs and ONNX files go (default: a temp dir)")
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--calib_count", type=int, default=256, help="calibration images per model")
    opts = parser.parse_args(argv)

    from msvision.data.demo import prepare_demo, prepare_longtail_demo

    work = opts.work or tempfile.mkdtemp(prefix="msvision-int8-")
    datasets = {"digits": prepare_demo(), "long-tailed digits": prepare_longtail_demo(os.path.join(work, "longtail"))}
    print(f"{'data':<20}{'model':<24}{'form':<30}{'top-1':>7}{'balanced':>10}{'worst class':>20}{'d top-1':>9}"
          f"{'d balanced':>11}", flush=True)
    for data_name, data_dir in datasets.items():
        for model in opts.models:
            out_dir = os.path.join(work, f"{data_name.replace(' ', '_')}_{model}")
            os.makedirs(out_dir, exist_ok=True)
            reference = None
            for form, metrics in study(model, data_dir, out_dir, opts.calib_count):
                reference = reference or metrics
                worst = metrics["per_class"][0]
                print(f"{data_name:<20}{model:<24}{form:<30}{metrics['top1']:>7.2f}{metrics['balanced_accuracy']:>10.2f}"
                      f"{worst['name'] + ' ' + format(worst['accuracy'], '.1f'):>20}"
                      f"{metrics['top1'] - reference['top1']:>+9.2f}"
                      f"{metrics['balanced_accuracy'] - reference['balanced_accuracy']:>+11.2f}", flush=True)


if __name__ == "__main__":
    run_cli(main)
