"""Export a checkpoint: python scripts/export.py --ckpt_path X --format MINDIR|ONNX|AIR [--image_size N] [--output F]
[--int8 --calib_dir DIR [--calib_count N] [--calib_method minmax|entropy|percentile] [--per_tensor] [--symmetric]]."""
import argparse
import os

from msvision.cli import run_cli


def count(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (images to calibrate on), got {value}")
    return value


def main(argv=None):
    from msvision import device
    from msvision.cli import check_output
    from msvision.cli.checkpoint import EXPORT_OPTIONS, parse_checkpoint_cli
    from msvision.config.kwargs import device_kwargs, preprocessing_kwargs
    from msvision.data.loaders import preprocessing
    from msvision.errors import MsvisionError
    from msvision.eval.export import check_format, export_model, output_path
    from msvision.eval.onnx_file import onnx_metadata
    from msvision.eval.predict import class_names, model_for_evaluation
    from msvision.eval.quantize import CALIB_METHODS, agreement, calibration_images, quantize_onnx
    from msvision.weights.io import CLASS_COUNTS_KEY

    def extra(parser):
        parser.add_argument("--format", default="MINDIR", type=str.upper, help="MINDIR, ONNX (or AIR on Ascend)")
        parser.add_argument("--image_size", type=int, default=None, help="default: image_resize or the model's")
        parser.add_argument("--output", default=None, help="output file (default: next to the checkpoint)")
        parser.add_argument("--int8", action="store_true", help="also write OUT.int8.onnx (ONNX only): static int8 "
                                                                "quantization calibrated on --calib_dir")
        parser.add_argument("--calib_dir", default=None, help="--int8: calibration images (class folders or a plain "
                                                              "folder), read with the eval preprocessing")
        parser.add_argument("--calib_count", type=count, default=256, help="--int8: images drawn (seeded, spread "
                                                                           "across classes); at least 1")
        parser.add_argument("--calib_method", default="minmax", choices=CALIB_METHODS, help="--int8: range rule")
        parser.add_argument("--per_tensor", action="store_true", help="--int8: one weight scale per tensor "
                                                                      "(default: per output channel)")
        parser.add_argument("--symmetric", action="store_true", help="--int8: symmetric activations (TensorRT)")

    args, state = parse_checkpoint_cli(argv, __doc__, EXPORT_OPTIONS, extra)
    if args.int8 and args.format != "ONNX":
        raise MsvisionError(f"--int8 writes an ONNX file: use it with --format ONNX, not {args.format}")
    if args.int8 and not args.calib_dir:
        raise MsvisionError("--int8 needs --calib_dir: a folder of images (or class folders) to calibrate on")
    check_format(args.format, device.resolve_device(args.device_target))
    path = output_path(args.output or os.path.splitext(args.ckpt_path)[0], args.format)
    int8_path = path[: -len(".onnx")] + ".int8.onnx"
    for target in [path] + ([int8_path] if args.int8 else []):
        check_output(target, "the export")
    size = args.image_size or args.image_resize or None
    preprocess = preprocessing(**dict(preprocessing_kwargs(args), image_resize=size))
    images = calibration_images(args.calib_dir, args.calib_count, preprocess) if args.int8 else None
    device.setup_device(**device_kwargs(args))
    net = model_for_evaluation(args.model, args.ckpt_path, args.num_classes, act_layer=args.act_layer,
                               **args.model_args)
    num_classes = net.get_classifier().out_channels
    counts = state.get(CLASS_COUNTS_KEY)
    metadata = onnx_metadata(args.model, preprocess, class_names(state, num_classes),
                             counts.asnumpy().tolist() if counts is not None and counts.shape == (num_classes,) else None)
    size = preprocess["size"]
    print(f"exported {export_model(net, size, args.format, path, metadata)} ({args.model}, input 1x3x{size}x{size})")
    if args.int8:
        form = f"{'per-tensor' if args.per_tensor else 'per-channel'} weights, {args.calib_method} calibration on " \
               f"{len(images)} images{', symmetric activations' if args.symmetric else ''}"
        quantize_onnx(path, int8_path, images, args.calib_method, not args.per_tensor, args.symmetric, metadata)
        match = agreement(path, int8_path, images)
        print(f"exported {int8_path} (int8 QDQ, {form}); on the calibration images int8 agrees with float32 on "
              f"{match['top1_agreement']:.1f}% of top-1, largest logit difference {match['max_logit_difference']:.4f} "
              f"(largest float32 logit {match['largest_logit']:.3f})")


if __name__ == "__main__":
    run_cli(main)
