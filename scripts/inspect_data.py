"""Dataset report: python scripts/inspect_data.py --data_dir D [--model NAME] [--json OUT] [--plot OUT.png].

Per split: classes, images, images per class (sorted table; min / median / max, imbalance, share of the largest
10% of classes), classes present in only one split, image sizes from file headers, formats, skipped and refused files.
"""
import argparse
import json
import os
import time

from msvision.cli import check_output, run_cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="folder holding the split folders (train/, val/)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="split folders to report (default: "
                                                                              "train val; absent ones are noted)")
    parser.add_argument("--model", default=None, help="report the share of images smaller than this model's input")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--plot", default=None, help="draw class counts and image sizes to this PNG (plot extra)")
    opts = parser.parse_args(argv)

    from msvision.data.inspect import dataset_report, format_report, plot_report
    from msvision.errors import MsvisionError
    from msvision.files import write_text
    from msvision.models import get_pretrained_cfg

    input_size = get_pretrained_cfg(opts.model).input_size[-1] if opts.model else None
    for path in (opts.json, opts.plot):
        if path:
            check_output(path)
    if opts.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise MsvisionError('plotting needs matplotlib: pip install -e ".[plot]"') from None
    if not os.path.isdir(opts.data_dir):
        raise MsvisionError(f"data_dir not found: '{opts.data_dir}'")
    present = [s for s in opts.splits if os.path.isdir(os.path.join(opts.data_dir, s))]
    if not present:
        raise MsvisionError(f"none of the split folders {', '.join(opts.splits)} is in '{opts.data_dir}'")
    started = time.perf_counter()
    report, spreads = dataset_report(opts.data_dir, present, input_size)
    report.update(model=opts.model, missing_splits=[s for s in opts.splits if s not in present],
                  seconds=round(time.perf_counter() - started, 2))
    print(format_report(report))
    for split in report["missing_splits"]:
        print(f"(no {split}/ folder)")
    print(f"report took {report['seconds']:.2f} s")
    if opts.json:
        write_text(opts.json, json.dumps(report, indent=1))
        print(f"figures written to {opts.json}")
    if opts.plot:
        plot_report(report, spreads, opts.plot)
        print(f"plot written to {opts.plot}")


if __name__ == "__main__":
    run_cli(main)
