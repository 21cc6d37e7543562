"""Export a checkpoint: python scripts/export.py --ckpt_path X --format MINDIR [--image_size N] [--output F]."""
import os

from msvision.cli import run_cli


def main(argv=None):
    from msvision import device
    from msvision.cli import check_output
    from msvision.cli.checkpoint import EXPORT_OPTIONS, parse_checkpoint_cli
    from msvision.config.kwargs import device_kwargs
    from msvision.eval.export import FORMATS, export_model
    from msvision.eval.predict import model_for_evaluation
    from msvision.models import get_pretrained_cfg

    def extra(parser):
        parser.add_argument("--format", default="MINDIR", help="MINDIR, ONNX (or AIR on Ascend)")
        parser.add_argument("--image_size", type=int, default=None, help="default: image_resize or the model's")
        parser.add_argument("--output", default=None, help="output file (default: next to the checkpoint)")

    args, _ = parse_checkpoint_cli(argv, __doc__, EXPORT_OPTIONS, extra)
    file_format = args.format.upper()
    output = args.output or os.path.splitext(args.ckpt_path)[0]
    if file_format in FORMATS:
        check_output(output if output.endswith(FORMATS[file_format]) else output + FORMATS[file_format], "the export")
    device.setup_device(**device_kwargs(args))
    net = model_for_evaluation(args.model, args.ckpt_path, args.num_classes, act_layer=args.act_layer,
                               **args.model_args)
    size = args.image_size or args.image_resize or get_pretrained_cfg(args.model).input_size[-1]
    print(f"exported {export_model(net, size, file_format, output)} ({args.model}, input 1x3x{size}x{size})")


if __name__ == "__main__":
    run_cli(main)
