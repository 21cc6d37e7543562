"""On an Ascend cluster: python scripts/ascend_check.py [--cards 8] [--models vgg13 vgg16 ese_vovnet39b]
--data_dir /data/imagenet -> one report file (throughput beside MindCV's figures, kill -9 + exact resume, keyed
dropout masks on the NPU, versions). Anywhere else it stops with one line saying where it runs."""
from msvision.cli import run_cli


def main(argv=None):
    from msvision.ascend.check import AscendCluster, parse_check_args, run_check

    print(f"report written: {run_check(AscendCluster(), **vars(parse_check_args(argv)))}")


if __name__ == "__main__":
    run_cli(main)
