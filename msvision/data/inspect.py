"""Dataset report (scripts/inspect_data.py): per split, class counts and imbalance, image sizes from file headers,
file formats, and the files the index skipped or refused.

It reads each split through its index (index.py): a fresh index is reused, otherwise the files are checked once
and the index written, exactly as a training start would. Sizes and formats come from each file's header (PIL opens
lazily and decodes no pixels).
"""
import time

import numpy as np
from PIL import Image

from msvision.data.dataset import open_split
from msvision.data.index import UnreadableImages

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def _records(data_dir, split):
    """(root, classes, [(relative path, label)], refused [(path, why)], skipped count, skipped example, how)."""
    try:
        index = open_split(split, data_dir=data_dir)
    except UnreadableImages as err:
        rows = [(rel, label) for rel, label, _, _ in err.records]
        example = err.others[0] if err.others else None
        return err.root, err.classes, rows, err.problems, len(err.others), example, "not written (unreadable files)"
    with open(index.files[:-len(".npz")] + ".tsv", encoding="utf-8") as handle:
        rows = [(rel, int(label)) for rel, label, _, _ in (line.rstrip("\n").split("\t") for line in handle)]
    return index.root, index.classes, rows, [], index.meta["skipped"], index.meta["skipped_example"], index.how


def _header(path):
    try:
        with Image.open(path) as image:
            return image.format or "unknown", image.size
    except (OSError, ValueError):  # passed the index's check but PIL cannot parse the header
        return "unparsable", (0, 0)


def split_report(data_dir, split, input_size=None):
    """The figures of one split (see the module docstring); classes maps each class folder to its image count."""
    started = time.perf_counter()
    root, classes, rows, refused, skipped, example, how = _records(data_dir, split)
    counts = np.bincount([label for _, label in rows], minlength=len(classes))
    headers = [_header(f"{root}/{rel}") for rel, _ in rows]
    widths = np.array([size[0] for _, size in headers])
    heights = np.array([size[1] for _, size in headers])
    formats = {}
    for fmt, _ in headers:
        formats[fmt] = formats.get(fmt, 0) + 1
    ordered = np.sort(counts)[::-1]
    largest = max(1, -(-len(counts) // 10))
    sizes = dict(distinct_resolutions=len(set(zip(widths.tolist(), heights.tolist()))),
                 width_percentiles={f"p{q}": float(np.percentile(widths, q)) for q in PERCENTILES},
                 height_percentiles={f"p{q}": float(np.percentile(heights, q)) for q in PERCENTILES})
    if input_size:
        sizes["input_size"] = input_size
        sizes["smaller_than_input"] = float(np.mean((widths < input_size) | (heights < input_size)))
    return dict(root=root, num_classes=len(classes), images=int(counts.sum()),
                classes={name: int(count) for name, count in zip(classes, counts)},
                min=int(counts.min()), median=float(np.median(counts)), max=int(counts.max()),
                imbalance_ratio=float(counts.max() / max(counts.min(), 1)),
                largest_classes=largest, largest_share=float(ordered[:largest].sum() / max(counts.sum(), 1)),
                sizes=sizes, formats=formats, skipped=skipped, skipped_example=example,
                refused=[dict(path=path, why=why) for path, why in refused], index=how,
                seconds=round(time.perf_counter() - started, 2)), widths, heights


def dataset_report(data_dir, splits, input_size=None):
    """{"classes": {split: {name: count}}, "splits": {split: figures}, "only_in": {split: [names]}} plus the
    widths and heights per split (for the plot)."""
    report, spreads = dict(data_dir=data_dir, classes={}, splits={}, only_in={}), {}
    for split in splits:
        figures, widths, heights = split_report(data_dir, split, input_size)
        report["classes"][split] = figures.pop("classes")
        report["splits"][split] = figures
        spreads[split] = (widths, heights)
    names = {split: set(classes) for split, classes in report["classes"].items()}
    for split in names:
        others = set().union(*(n for s, n in names.items() if s != split)) if len(names) > 1 else set()
        report["only_in"][split] = sorted(names[split] - others) if len(names) > 1 else []
    return report, spreads


def format_report(report):
    """The report as text: a summary per split, then one table of images per class (largest first)."""
    lines = [f"data_dir {report['data_dir']}"]
    for split, fig in report["splits"].items():
        sizes = fig["sizes"]
        lines.append(f"{split}: {fig['num_classes']} classes, {fig['images']:,} images; per class min {fig['min']} / "
                     f"median {fig['median']:g} / max {fig['max']}; imbalance (max/min) {fig['imbalance_ratio']:.1f}; "
                     f"the largest 10% of classes ({fig['largest_classes']}) hold {100 * fig['largest_share']:.1f}% "
                     f"of the images")
        width = "/".join(f"{sizes['width_percentiles'][k]:g}" for k in ("p5", "p50", "p95"))
        height = "/".join(f"{sizes['height_percentiles'][k]:g}" for k in ("p5", "p50", "p95"))
        small = f"; {100 * sizes['smaller_than_input']:.1f}% narrower or lower than the model's input " \
                f"{sizes['input_size']} px" if "smaller_than_input" in sizes else ""
        lines.append(f"  sizes: {sizes['distinct_resolutions']:,} distinct resolutions; width p5/p50/p95 {width}, "
                     f"height p5/p50/p95 {height}{small}")
        formats = ", ".join(f"{name} {count:,}" for name, count in sorted(fig["formats"].items()))
        skipped = (f"; skipped {fig['skipped']} non-image file(s) (e.g. {fig['skipped_example']})"
                   if fig["skipped"] else "")
        lines.append(f"  formats: {formats}{skipped}; refused {len(fig['refused'])}; index {fig['index']}")
        lines += [f"  refused: {row['path']}: {row['why']}" for row in fig["refused"]]
    for split, names in report["only_in"].items():
        if names:
            lines.append(f"classes only in {split}: {', '.join(names)}")
    splits = list(report["classes"])
    names = sorted(set().union(*(report["classes"][s] for s in splits)),
                   key=lambda n: (-report["classes"][splits[0]].get(n, 0), n))
    lines.append(f"images per class{' (largest first)' if splits else ''}:")
    lines.append(f"  {'class':<30}" + "".join(f"{s:>10}" for s in splits))
    lines += [f"  {name:<30}" + "".join(f"{report['classes'][s].get(name, 0):>10}" for s in splits) for name in names]
    return "\n".join(lines)


def plot_report(report, spreads, path):
    """Class counts per split on a log scale (largest first) and the spread of image sizes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (counts_ax, sizes_ax) = plt.subplots(1, 2, figsize=(13, 4.5))
    for split, classes in report["classes"].items():
        counts_ax.plot(sorted(classes.values(), reverse=True), label=split)
    counts_ax.set_yscale("log")
    counts_ax.set_xlabel("class (sorted by count)")
    counts_ax.set_ylabel("images")
    counts_ax.legend()
    for split, (widths, heights) in spreads.items():
        take = np.random.default_rng(0).permutation(len(widths))[:20000]
        sizes_ax.scatter(widths[take], heights[take], s=4, alpha=0.3, label=split)
    sizes_ax.set_xlabel("width (px)")
    sizes_ax.set_ylabel("height (px)")
    sizes_ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
