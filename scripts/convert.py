"""Convert reference weights (timm, torchvision, the 1e100 VoVNet trainer, MindCV) into an msvision checkpoint."""
import argparse
import logging
import sys

from msvision.cli import run_cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="msvision model name, e.g. vovnet39, ese_vovnet39b, vgg16")
    parser.add_argument("--input", required=True, help="PyTorch state dict (.pth/.pt) or MindCV .ckpt")
    parser.add_argument("--output", required=True, help="MindSpore .ckpt to write")
    parser.add_argument("--source", default=None,
                        help="timm, torchvision, 1e100 or mindcv (default: detected from the file)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from msvision.convert.convert import convert_file

    net, source = convert_file(args.model, args.input, args.output, args.source)
    print(f"wrote {args.output}: {args.model} from {source}, {len(net.parameters_dict())} tensors")


if __name__ == "__main__":
    run_cli(main)
