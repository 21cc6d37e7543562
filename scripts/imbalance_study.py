"""Does the imbalance handling help? python scripts/imbalance_study.py [--data_dir D] [--seeds 1 2] [--only_data]

Builds a long-tailed version of the demo digits (training images per class falling exponentially from 150 to 3,
imbalance 50; 25 validation images of every class), trains the demo recipe on it with no imbalance handling,
sampler class_balanced, class_weight inverse, logit_adjust_tau 1, loss bce and loss eqlv2, each seed in its own
process, and prints the final epoch's top-1, balanced accuracy and worst-class accuracy (mean over the seeds last).
"""
import argparse
import os
import subprocess
import sys
import tempfile

from msvision.cli import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "configs", "demo", "ese_vovnet19b_slim_dw_digits.yaml")
SETTINGS = {
    "none": [],
    "sampler class_balanced": ["--sampler", "class_balanced"],
    "class_weight inverse": ["--class_weight", "inverse"],
    "logit_adjust_tau 1": ["--logit_adjust_tau", "1"],
    "loss bce": ["--loss", "bce"],
    "loss eqlv2": ["--loss", "eqlv2"],
}
COLUMNS = ("val_top1", "val_balanced_accuracy", "val_worst_class_accuracy")


def train_once(data_dir, out_dir, seed, extra):
    """One run of the demo recipe on data_dir; the last summary.csv row."""
    from msvision.errors import MsvisionError
    from msvision.train.records import read_summary

    cmd = [sys.executable, os.path.join(ROOT, "train.py"), "-c", RECIPE, "--dataset", "imagefolder", "--data_dir",
           data_dir, "--seed", str(seed), "--ckpt_save_dir", out_dir, "--keep_checkpoint_max", "1"] + extra
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise MsvisionError(f"training failed ({' '.join(extra) or 'no option'}, seed {seed}): "
                            f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return read_summary(os.path.join(out_dir, "summary.csv"))[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=None, help="where the long-tailed folders go (default: a temp dir)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only_data", action="store_true", help="write the long-tailed folders and stop")
    opts = parser.parse_args(argv)

    from msvision.data.demo import longtail_counts, prepare_longtail_demo

    work = tempfile.mkdtemp(prefix="msvision-imbalance-")
    data_dir = prepare_longtail_demo(opts.data_dir or os.path.join(work, "digits_longtail"))
    counts = longtail_counts()
    print(f"long-tailed digits in {data_dir}: train images per class {counts} (imbalance "
          f"{counts[0] / counts[-1]:.0f}), 25 val images per class")
    if opts.only_data:
        return
    print(f"{'setting':<26}{'seed':>5}{'top-1':>8}{'balanced':>10}{'worst class':>13}")
    for name, extra in SETTINGS.items():
        rows = []
        for seed in opts.seeds:
            row = train_once(data_dir, os.path.join(work, f"{name.replace(' ', '_')}_{seed}"), seed, extra)
            rows.append([float(row[c]) for c in COLUMNS])
            print(f"{name:<26}{seed:>5}" + "".join(f"{v:>{w}.2f}" for v, w in zip(rows[-1], (8, 10, 13))), flush=True)
        means = [sum(r[i] for r in rows) / len(rows) for i in range(3)]
        print(f"{name + ' (mean)':<26}{'':>5}" + "".join(f"{v:>{w}.2f}" for v, w in zip(means, (8, 10, 13))),
              flush=True)


if __name__ == "__main__":
    run_cli(main)
