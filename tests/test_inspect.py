"""scripts/inspect_data.py: figures of a small messy dataset whose every count, size and format is known."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli

# (split, class, width, height, format, count)
FILES = [("train", "a", 40, 30, "JPEG", 6), ("train", "b", 64, 64, "PNG", 2), ("train", "c", 320, 240, "JPEG", 1),
         ("val", "a", 40, 30, "JPEG", 2), ("val", "b", 64, 64, "PNG", 1), ("val", "d", 300, 200, "JPEG", 1)]


def write_dataset(root):
    rng = np.random.default_rng(0)
    for split, name, width, height, fmt, count in FILES:
        folder = os.path.join(root, split, name)
        os.makedirs(folder, exist_ok=True)
        for index in range(count):
            pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, f"{index}.{'png' if fmt == 'PNG' else 'jpg'}"), fmt)
    with open(os.path.join(root, "train", "a", "README.txt"), "w") as handle:
        handle.write("labels from the survey")
    return root


@pytest.mark.slow
def test_report_figures_sizes_formats_and_refused_files(tmp_path):
    data = write_dataset(str(tmp_path / "data"))
    out = run_cli(["scripts/inspect_data.py", "--data_dir", data, "--model", "vgg11", "--json", tmp_path / "r.json",
                   "--plot", tmp_path / "r.png"]).stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["classes"] == {"train": {"a": 6, "b": 2, "c": 1}, "val": {"a": 2, "b": 1, "d": 1}}
    train = report["splits"]["train"]
    assert (train["images"], train["min"], train["median"], train["max"]) == (9, 1, 2.0, 6)
    assert train["imbalance_ratio"] == 6.0 and train["largest_classes"] == 1
    assert abs(train["largest_share"] - 6 / 9) < 1e-12
    widths = [40] * 6 + [64] * 2 + [320]
    heights = [30] * 6 + [64] * 2 + [240]
    sizes = train["sizes"]
    assert sizes["distinct_resolutions"] == 3 and sizes["input_size"] == 224
    assert sizes["width_percentiles"]["p50"] == 40 and sizes["height_percentiles"]["p99"] == np.percentile(heights, 99)
    assert sizes["width_percentiles"]["p95"] == np.percentile(widths, 95)
    assert abs(sizes["smaller_than_input"] - 8 / 9) < 1e-12  # 320x240 is the one image not below 224 px
    assert train["formats"] == {"JPEG": 7, "PNG": 2} and train["skipped"] == 1 and train["refused"] == []
    assert train["skipped_example"].endswith("train/a/README.txt")
    assert report["only_in"] == {"train": ["c"], "val": ["d"]}
    assert report["splits"]["val"]["sizes"]["smaller_than_input"] == 1.0
    assert "train: 3 classes, 9 images; per class min 1 / median 2 / max 6; imbalance (max/min) 6.0" in out
    assert "classes only in train: c" in out and "classes only in val: d" in out
    with Image.open(tmp_path / "r.png") as image:
        assert image.format == "PNG" and len(set(image.convert("L").getdata())) > 10
    assert "index built" in out

    # a second report reuses both indexes; a truncated JPEG is reported (not counted) and no index is written
    assert run_cli(["scripts/inspect_data.py", "--data_dir", data]).stdout.count("index reused") == 2
    with open(os.path.join(data, "train", "c", "0.jpg"), "rb") as handle:
        whole = handle.read()
    with open(os.path.join(data, "train", "c", "1.jpg"), "wb") as handle:
        handle.write(whole[:len(whole) // 2])
    out = run_cli(["scripts/inspect_data.py", "--data_dir", data, "--json", tmp_path / "r2.json"]).stdout
    train = json.loads((tmp_path / "r2.json").read_text())["splits"]["train"]
    assert train["refused"] == [{"path": os.path.join(data, "train", "c", "1.jpg"),
                                 "why": "truncated JPEG (no end marker)"}]
    assert train["images"] == 9 and train["index"] == "not written (unreadable files)"
    assert "refused 1; index not written" in out


@pytest.mark.slow
def test_bad_inputs(tmp_path):
    data = write_dataset(str(tmp_path / "data"))
    for args, message in (
            (["--data_dir", tmp_path / "none"], f"error: data_dir not found: '{tmp_path}/none'"),
            (["--data_dir", data, "--splits", "test"], f"error: none of the split folders test is in '{data}'"),
            (["--data_dir", data, "--json", tmp_path / "no" / "r.json"],
             f"error: cannot write '{tmp_path}/no/r.json': folder '{tmp_path}/no' does not exist"),
            (["--data_dir", data, "--model", "vgg12"], "error: unknown model 'vgg12'")):
        done = run_cli(["scripts/inspect_data.py"] + args, check=False)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(message), done.stderr
