"""Train a model: python train.py --config configs/vgg/vgg16_ascend.yaml --data_dir /data/imagenet (msrun too)."""
from msvision.cli import run_cli
from msvision.config import parse_config


def main(argv=None):
    from msvision.train.loop import train

    train(parse_config(argv, description=__doc__))


if __name__ == "__main__":
    run_cli(main)
