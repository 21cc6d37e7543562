"""scripts/scaling.py: the all-reduce model's arithmetic and the CLI's projection table."""
import re

import pytest

from msvision.bench.allreduce_model import allreduce_seconds, project
from tests.conftest import run_cli


def test_hierarchical_allreduce_arithmetic():
    gigabyte = 1e9
    # one node of 8: a ring moves 2 * 7/8 of the bytes over HCCS
    assert allreduce_seconds(gigabyte, 8, 8, intra_gbs=10.0, inter_gbs=1.0) == pytest.approx(2 * 7 / 8 / 10.0)
    # 4 nodes: plus each card's 1/8 share all-reduced across nodes over its RoCE port
    expected = 2 * 7 / 8 / 10.0 + 2 * 3 / 4 * (1 / 8) / 1.0
    assert allreduce_seconds(gigabyte, 32, 8, intra_gbs=10.0, inter_gbs=1.0) == pytest.approx(expected)


def test_projection_efficiency_falls_with_cards_and_overlap_hides_communication():
    rows = project(553e6, 40.0, 32, [8, 16, 32, 64])
    efficiencies = [r.efficiency for r in rows]
    assert efficiencies == sorted(efficiencies, reverse=True) and 0 < efficiencies[-1] < efficiencies[0] < 1
    hidden = project(553e6, 40.0, 32, [8, 16, 32, 64], overlap=1.0, backward_share=1.0)
    assert all(h.step_ms < r.step_ms for h, r in zip(hidden, rows))
    assert rows[0].images_per_s == pytest.approx(8 * 32 / rows[0].step_ms * 1e3)


@pytest.mark.slow
def test_scaling_cli_prints_a_projection_per_bandwidth():
    out = run_cli(["scripts/scaling.py", "--model", "vgg16", "--step_ms", "40", "--cards", "8", "16"]).stdout
    assert "vgg16: 138.36M parameters, 553 MB of gradients per all-reduce" in out
    assert out.count("(projection)") == 2 and len([l for l in out.splitlines() if l.strip().startswith("16 ")]) == 2
    bad = run_cli(["scripts/scaling.py", "--model", "vgg16", "--step_ms", "0"], check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --step_ms must be > 0 and --overlap in [0, 1]"


@pytest.mark.slow
def test_cli_reads_roce_in_gigabits():
    """--inter_gbits 100 is 12.5 GB/s: the 16-card (2-node) all-reduce time worked out by hand from the printed
    gradient size (HCCS 30 GB/s inside the node, each card's 1/8 share across the 2 nodes)."""
    out = run_cli(["scripts/scaling.py", "--model", "vgg16", "--step_ms", "40", "--cards", "16", "--inter_gbits",
                   "100"]).stdout
    params = float(re.search(r"vgg16: ([\d.]+)M parameters", out).group(1)) * 1e6
    grad_bytes = 4 * params
    expected_ms = 1e3 * (2 * 7 / 8 * grad_bytes / 30e9 + 2 * 1 / 2 * (grad_bytes / 8) / (100e9 / 8))
    row = [line.split() for line in out.splitlines() if line.strip().startswith("16 ")][0]
    print(out, f"expected all-reduce {expected_ms:.2f} ms")
    assert abs(float(row[1]) - expected_ms) <= 0.051  # printed with one decimal
