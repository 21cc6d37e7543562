"""Train a model: python train.py --config configs/vgg/vgg16_ascend.yaml --data_dir /data/imagenet (msrun too)."""
from msvision.cli import run_cli


def main(argv=None):
    from msvision.train.loop import parse_train_args, train

    train(parse_train_args(argv))


if __name__ == "__main__":
    run_cli(main)
