"""Top-5 predictions: python scripts/infer.py --ckpt_path X img1.jpg [img2.jpg ...]."""
from msvision.cli import run_cli


def main(argv=None):
    from msvision import device
    from msvision.inference import class_names, model_from_checkpoint, parse_with_checkpoint, predict_files

    def extra(parser):
        parser.add_argument("images", nargs="+", help="image files")
        parser.add_argument("--top_k", type=int, default=5)

    args, ckpt = parse_with_checkpoint(argv, __doc__, extra)
    device.setup_device(args)
    net = model_from_checkpoint(args, ckpt)
    names = class_names(ckpt, args.num_classes) or [f"class_{i}" for i in range(args.num_classes)]
    for path, top in zip(args.images, predict_files(net, args, args.images, args.top_k)):
        print(path + ": " + ", ".join(f"{names[i]} {p:.3f}" for i, p in top))


if __name__ == "__main__":
    run_cli(main)
