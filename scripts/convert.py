"""Convert reference weights (timm, torchvision, the 1e100 VoVNet trainer, MindCV) into an msvision checkpoint."""
import argparse
import logging
import os
import sys

from msvision.cli import run_cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="msvision model name, e.g. vovnet39, ese_vovnet39b, vgg16")
    parser.add_argument("--input", required=True, help="PyTorch state dict (.pth/.pt), .safetensors or MindCV .ckpt")
    parser.add_argument("--output", required=True, help="MindSpore .ckpt to write")
    parser.add_argument("--source", default=None,
                        help="timm, torchvision, 1e100 or mindcv (default: detected from the file)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from msvision.cli import check_output
    from msvision.errors import MsvisionError
    from msvision.models import create_model, get_pretrained_cfg
    from msvision.weights.io import save_atomic

    get_pretrained_cfg(args.model)  # an unknown model name fails before any reading
    if not os.path.isfile(args.input):
        raise MsvisionError(f"input file not found: '{args.input}'")
    check_output(args.output, "the output")
    net = create_model(args.model, checkpoint_path=args.input, source=args.source)
    save_atomic(net, args.output)
    print(f"wrote {args.output}: {args.model} from {net.weights_source}, {len(net.parameters_dict())} tensors")


if __name__ == "__main__":
    run_cli(main)
