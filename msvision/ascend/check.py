"""What only a real Ascend cluster can show, in one report: each recipe's first steps at jit O2 with data sink and
amp (per-card img/s and ms/step beside MindCV's published figures), kill -9 and exact resume, the keyed dropout
masks against their uint32 definition, and the device, CANN and MindSpore versions. Every device call goes through
one seam, `AscendCluster`; the CPU tests replace it and check the arguments and the report."""
import datetime
import glob
import os
import platform

import numpy as np

from msvision.errors import ArgumentParser, MsvisionError, name_list
from msvision.files import check_output, write_text

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# MindCV's published training figures, 8 x Ascend 910*, batch 32 per card, jit O2 (MindCV README, VGG section)
MINDCV_PUBLISHED = {"vgg13": (30.15, 8490.0), "vgg19": (38.72, 6611.0)}


def recipes():
    """{model: its Ascend recipe}, from configs/*/<model>_ascend.yaml."""
    paths = glob.glob(os.path.join(REPO, "configs", "*", "*_ascend.yaml"))
    return {os.path.basename(p)[: -len("_ascend.yaml")]: p for p in sorted(paths)}


def parse_check_args(argv=None):
    """The command line of scripts/ascend_check.py, checked before any device call."""
    parser = ArgumentParser(description="Run msvision's recipes on an Ascend cluster and write one report file.")
    parser.add_argument("--cards", type=int, default=8, help="NPUs to train on (msrun workers), 1 to 4096")
    parser.add_argument("--models", nargs="+", default=["vgg13", "vgg16", "ese_vovnet39b"],
                        help="recipes to run: configs/*/<model>_ascend.yaml")
    parser.add_argument("--steps", type=int, default=200, help="training steps per recipe, 20 to 100000")
    parser.add_argument("--data_dir", default=None, help="an ImageNet-style folder (train/<class>/*.JPEG)")
    parser.add_argument("--report", default="ascend_check_report.md", help="the report file to write (a new file)")
    parser.add_argument("--work_dir", default="ascend_check_runs", help="a new folder for the runs' data links, logs "
                        "and checkpoints")
    args = parser.parse_args(argv)
    if not 1 <= args.cards <= 4096:
        raise MsvisionError(f"--cards must be 1 to 4096, got {args.cards}")
    if not 20 <= args.steps <= 100000:
        raise MsvisionError(f"--steps must be 20 to 100000, got {args.steps}")
    unknown = [m for m in args.models if m not in recipes()]
    if unknown:
        raise MsvisionError(f"no Ascend recipe for {', '.join(unknown)}: choose from {name_list(recipes(), 20)}")
    if os.path.exists(args.work_dir):
        raise MsvisionError(f"--work_dir '{args.work_dir}' already exists: choose a new folder (earlier runs in it are "
                            f"not overwritten)")
    check_output(args.report, "the report")
    if os.path.exists(args.report):
        raise MsvisionError(f"report '{args.report}' already exists: choose another --report (it is not overwritten)")
    return args


def uint32_hash(x):
    """models.layers._hash32 in NumPy uint32 arithmetic: the definition the device's masks must equal."""
    x = np.atleast_1d(np.asarray(x, np.uint32))
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x5BD1E995)
    return x ^ (x >> np.uint32(16))


def reference_keep(shape, p, counter, seed_key, salt):
    """The keep mask of KeyedDropout(p) at (counter, seed key, salt), from the definition."""
    key = uint32_hash(uint32_hash(np.uint32(counter) ^ np.uint32(seed_key)) ^ np.int64(salt).astype(np.uint32))
    bits = uint32_hash(uint32_hash(np.arange(int(np.prod(shape)), dtype=np.uint32)) ^ key)
    return ((bits >> np.uint32(8)) / 2.0 ** 24 >= p).reshape(shape)


def figures_row(model, result):
    """One report table row: model, ms/step, img/s per card, MindCV's figures (8 cards) when published."""
    published = MINDCV_PUBLISHED.get(model)
    mindcv = f"{published[0]:.2f} ms, {published[1] / 8:.0f} img/s per card" if published else "not published"
    return (f"| {model} | {result['cards']} | {result['steps']} | {result['ms_per_step']:.2f} | "
            f"{result['img_per_s'] / result['cards']:.0f} | {mindcv} |")


def report_text(command, environment, throughput, resume, masks):
    """The report (markdown): the command, environment, throughput table, exact resume and keyed masks results."""
    lines = [f"# msvision Ascend check, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
             f"- command: `{command}`"]
    lines += [f"- {key}: {value}" for key, value in environment.items()]
    lines += ["", "## Training throughput (jit O2, data sink, amp as in the recipe; the first log interval, "
              "compilation included, left out)", "",
              "| model | cards | steps | ms/step | img/s per card | MindCV (8 cards) |", "|---|---|---|---|---|---|"]
    lines += [figures_row(model, result) for model, result in throughput.items()]
    lines += ["", "## Kill -9 and exact resume", ""]
    lines += [f"- {model}: {'bit-identical' if r['equal'] else 'DIFFERS'} ({r['detail']})"
              for model, r in resume.items()]
    lines += ["", "## Keyed dropout masks on the device", "",
              f"- {'equal to' if masks['equal'] else 'DIFFER from'} the uint32 definition ({masks['detail']})", ""]
    return "\n".join(lines)


class AscendCluster:
    """The seam: every call that needs Ascend hardware (never run on this project's CPU machines)."""

    def environment(self):
        """{device, CANN, MindSpore, ...}; a MsvisionError naming where the check runs on any other machine."""
        import mindspore as ms

        if not ms.hal.is_available("Ascend"):
            raise MsvisionError(f"ascend_check runs on an Ascend machine (MindSpore's Ascend build and an NPU); "
                                f"this one has none (MindSpore {ms.__version__}, {platform.machine()}): "
                                f"the CPU-side op audit is `python scripts/ascend_audit.py`")
        from msvision.ascend import cluster_runs

        return cluster_runs.environment()

    def throughput(self, model, cards, steps, data_dir, work_dir):
        """{cards, steps, ms_per_step, img_per_s, log} of the recipe's first `steps` steps on `cards` NPUs."""
        from msvision.ascend import cluster_runs

        return cluster_runs.throughput(recipes()[model], cards, steps, data_dir, work_dir)

    def exact_resume(self, model, cards, data_dir, work_dir):
        """{equal, detail}: a run killed (-9) after a mid-epoch checkpoint and resumed ends with the uninterrupted
        run's weights."""
        from msvision.ascend import cluster_runs

        return cluster_runs.exact_resume(recipes()[model], cards, data_dir, work_dir)

    def keyed_masks(self):
        """{equal, detail}: KeyedDropout's masks computed on the NPU against reference_keep."""
        from msvision.ascend import cluster_runs

        return cluster_runs.keyed_masks(reference_keep)


def run_check(cluster, cards, models, steps, data_dir, report, work_dir):
    """Run the check on `cluster` (the seam: the device first, then the data) and write the report; returns its
    path."""
    environment = cluster.environment()
    if data_dir is None or not os.path.isdir(os.path.join(data_dir, "train")):
        raise MsvisionError(f"--data_dir must hold train/<class>/ image folders (ImageNet style), got '{data_dir}'")
    throughput, resume = {}, {}
    for model in models:
        folder = os.path.join(work_dir, model)
        throughput[model] = cluster.throughput(model, cards, steps, data_dir, folder)
        resume[model] = cluster.exact_resume(model, cards, data_dir, folder + "_resume")
    command = f"python scripts/ascend_check.py --cards {cards} --models {' '.join(models)} --steps {steps}"
    write_text(report, report_text(command, environment, throughput, resume, cluster.keyed_masks()))
    return report
