"""Evaluate a checkpoint: python validate.py --ckpt_path X [--config Y] [--data_dir D] [--ema_weights] [--output R.json]
(or an exported ONNX file: --onnx F.onnx --data_dir D)."""
from msvision.cli import run_cli


def main(argv=None):
    from msvision.eval.validate import run_validation

    run_validation(argv)


if __name__ == "__main__":
    run_cli(main)
