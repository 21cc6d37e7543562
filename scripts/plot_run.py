"""Loss, top-1 and learning-rate curves of one or more runs (their summary.csv), overlaid, to a PNG.

    python scripts/plot_run.py outputs/run_a outputs/run_b --output runs.png
Needs matplotlib: pip install -e ".[plot]".
"""
import argparse
import os

from msvision.cli import check_output, run_cli
from msvision.errors import MsvisionError
from msvision.train.records import SUMMARY, read_summary

PANELS = (("train_loss", "train loss"), ("val_top1", "val top-1 (%)"), ("lr", "learning rate"))


def plot_runs(run_dirs, output, width=1500, height=450, dpi=100):
    """Draw the three panels for every run (x: epoch) into output; returns the output path."""
    try:
        import matplotlib
    except ImportError:
        raise MsvisionError('plotting needs matplotlib: pip install -e ".[plot]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = []
    for run_dir in run_dirs:
        rows = read_summary(os.path.join(run_dir, SUMMARY))
        if not rows:
            raise MsvisionError(f"no {SUMMARY} with epochs in '{run_dir}' (expected a train.py ckpt_save_dir)")
        runs.append((os.path.basename(os.path.normpath(run_dir)), rows))
    figure, axes = plt.subplots(1, len(PANELS), figsize=(width / dpi, height / dpi), dpi=dpi)
    for axis, (column, title) in zip(axes, PANELS):
        for label, rows in runs:
            points = [(int(r["epoch"]), float(r[column])) for r in rows if r[column] != ""]
            if points:
                axis.plot(*zip(*points), marker="o", label=label)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[-1].set_yscale("log")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(output, dpi=dpi)
    plt.close(figure)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", help="ckpt_save_dir of each run")
    parser.add_argument("--output", default="runs.png")
    args = parser.parse_args(argv)
    check_output(args.output, "the plot")
    print(f"wrote {plot_runs(args.run_dirs, args.output)}")


if __name__ == "__main__":
    run_cli(main)
