"""Convert a timm or torchvision PyTorch checkpoint into a MindSpore checkpoint for the same msvision model."""
import argparse

from msvision.cli import run_cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="msvision model name, e.g. ese_vovnet39b or vgg16_bn")
    parser.add_argument("--torch-checkpoint", required=True, help="file saved with torch.save(model.state_dict())")
    parser.add_argument("--output", required=True, help="MindSpore .ckpt to write")
    args = parser.parse_args(argv)
    from msvision.convert.timm import convert_torch_checkpoint

    net = convert_torch_checkpoint(args.model, args.torch_checkpoint, args.output)
    count = sum(p.size for p in net.get_parameters())
    print(f"wrote {args.output}: {args.model}, {count} values in {len(net.parameters_dict())} tensors")


if __name__ == "__main__":
    run_cli(main)
