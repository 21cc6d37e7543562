"""Export a checkpoint: python scripts/export.py --ckpt_path X --format MINDIR [--image_size N] [--output F]."""
import os

from msvision.cli import run_cli


def main(argv=None):
    from msvision import device
    from msvision.export import export_model
    from msvision.inference import model_from_checkpoint, parse_with_checkpoint
    from msvision.models import get_pretrained_cfg

    def extra(parser):
        parser.add_argument("--format", default="MINDIR", help="MINDIR, ONNX (or AIR on Ascend)")
        parser.add_argument("--image_size", type=int, default=None, help="default: image_resize or the model's")
        parser.add_argument("--output", default=None, help="output file (default: next to the checkpoint)")

    args, ckpt = parse_with_checkpoint(argv, __doc__, extra)
    device.setup_device(args)
    net = model_from_checkpoint(args, ckpt)
    size = args.image_size or args.image_resize or get_pretrained_cfg(args.model).input_size[-1]
    output = args.output or os.path.splitext(args.ckpt_path)[0]
    print(f"exported {export_model(net, size, args.format.upper(), output)} ({args.model}, input 1x3x{size}x{size})")


if __name__ == "__main__":
    run_cli(main)
