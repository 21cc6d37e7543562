"""Top-5 predictions: python scripts/infer.py --ckpt_path X img1.jpg [img2.jpg ...]."""
from msvision.cli import run_cli


def main(argv=None):
    from msvision import device
    from msvision.cli.checkpoint import INFER_OPTIONS, parse_checkpoint_cli
    from msvision.config.kwargs import device_kwargs, preprocessing_kwargs
    from msvision.eval.predict import class_names, model_for_evaluation, predict_files

    def extra(parser):
        parser.add_argument("images", nargs="+", help="image files")
        parser.add_argument("--top_k", type=int, default=5, help="predictions per image")

    args, state = parse_checkpoint_cli(argv, __doc__, INFER_OPTIONS, extra)
    device.setup_device(**device_kwargs(args))
    net = model_for_evaluation(args.model, args.ckpt_path, args.num_classes, act_layer=args.act_layer,
                               **args.model_args)
    count = net.get_classifier().out_channels
    names = class_names(state, count) or [f"class_{i}" for i in range(count)]
    for path, top in zip(args.images, predict_files(net, args.images, preprocessing_kwargs(args), args.top_k)):
        print(path + ": " + ", ".join(f"{names[i]} {p:.3f}" for i, p in top))


if __name__ == "__main__":
    run_cli(main)
