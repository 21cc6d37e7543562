"""Write the demo digits as a CIFAR-10 binary archive: python scripts/make_cifar_demo.py --output D

data_batch_1.bin and data_batch_2.bin (718 and 719 records: not CIFAR's 10,000 per file), test_batch.bin (360) and
batches.meta.txt, in CIFAR-10's real record format (1 label byte, then 1024 red, 1024 green, 1024 blue bytes), for
configs/cifar/demo_vgg11_bn_cifar.yaml on a CPU.
"""
import argparse

import numpy as np

from msvision.cli import run_cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="folder to write (created)")
    opts = parser.parse_args(argv)
    from PIL import Image

    from msvision.data.cifar import write_cifar
    from msvision.data.demo import DIGITS_FILE

    data = np.load(DIGITS_FILE)
    images = np.stack([np.asarray(Image.fromarray(p, mode="L").resize((32, 32), Image.BILINEAR).convert("RGB"))
                       for p in data["images"]])
    labels = data["labels"].astype(np.uint8)
    test = np.arange(len(labels)) % 5 == 0  # as the demo's folders: every fifth image to test
    train = np.flatnonzero(~test)
    half = len(train) // 2
    write_cifar(opts.output, "cifar10", {"data_batch_1.bin": (images[train[:half]], labels[train[:half]]),
                                         "data_batch_2.bin": (images[train[half:]], labels[train[half:]]),
                                         "test_batch.bin": (images[test], labels[test])},
                names=[f"digit_{i}" for i in range(10)])
    print(f"wrote {opts.output}: {len(train)} training and {int(test.sum())} test records of CIFAR-10's format")


if __name__ == "__main__":
    run_cli(main)
