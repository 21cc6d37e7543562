"""Shared fixtures: the torch/timm reference (imported once, with the torchvision op schemas timm expects)."""
import os
import re
import socket
import subprocess
import sys
import tempfile

import mindspore as ms
import pytest

import msvision  # noqa: F401  (applies the CPU speed setting before MindSpore builds kernels)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The slow marker means "starts a process" (a CLI, a script, msrun), in the test or in a fixture it uses; the
# suite holds every test to that (check_slow_marker), so -m "not slow" is exactly the in-process tests.
_SPAWNS = []
_SPAWNING_FIXTURES = set()
_popen_init = subprocess.Popen.__init__


def _counting_popen_init(self, *args, **kwargs):
    _SPAWNS.append(args[0] if args else kwargs.get("args"))
    _popen_init(self, *args, **kwargs)


subprocess.Popen.__init__ = _counting_popen_init


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    before = len(_SPAWNS)
    yield
    if len(_SPAWNS) > before:
        _SPAWNING_FIXTURES.add(fixturedef.argname)


@pytest.fixture(autouse=True)
def check_slow_marker(request):
    before = len(_SPAWNS)
    yield
    spawns = len(_SPAWNS) > before or bool(_SPAWNING_FIXTURES & set(request.fixturenames))
    marked = request.node.get_closest_marker("slow") is not None
    if spawns != marked:
        pytest.fail(f"{request.node.nodeid}: {'starts a process but is not' if spawns else 'starts no process but is'}"
                    f" marked slow", pytrace=False)
# msrun sits next to this interpreter and starts its workers as `python`: this interpreter's bin/ goes first on the
# PATH the tests' processes inherit, so a venv run without activating it (venv/bin/python -m pytest) uses its own
BIN_FIRST_ON_PATH = os.path.dirname(sys.executable)
os.environ["PATH"] = os.pathsep.join([BIN_FIRST_ON_PATH, os.environ.get("PATH", "")])
# split indexes of the tests' folders go to a cache of their own (inherited by the CLI subprocesses)
os.environ["MSVISION_CACHE"] = tempfile.mkdtemp(prefix="msvision-test-cache-")


def _import_torch_reference():
    torch = pytest.importorskip("torch", reason="torch is in the [convert] extra")
    if not hasattr(torch.ops.torchvision, "nms"):
        # torchvision 0.28's C extension does not load with CPU torch; timm only needs the op schemas to exist.
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor qdata, Tensor scores, float iou_threshold) -> Tensor")
        _import_torch_reference.keep = lib
    import timm
    import torchvision.models
    return torch, timm, torchvision.models


@pytest.fixture(autouse=True)
def restore_execution_mode():
    """Tests switch MindSpore's execution mode freely (ms.set_context(mode=...)): each ends in the mode it started
    in, also when it fails half-way."""
    before = ms.get_context("mode")
    yield
    if ms.get_context("mode") != before:
        ms.set_context(mode=before)


@pytest.fixture(scope="session")
def torch_reference():
    """(torch, timm, torchvision.models), or skip when the [convert] extra is not installed."""
    return _import_torch_reference()


@pytest.fixture
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TINY_RUN = dict(model="ese_vovnet19b_slim_dw", num_classes=4, image_resize=32, batch_size=8, num_parallel_workers=1)


def tiny_run(**options):
    """The command-line options of a small run on the 4-class image folder: TINY_RUN's, with `options` replacing or
    adding (a tuple gives several values, a bool is written true / false, None leaves the option out)."""
    argv = []
    for key, value in dict(TINY_RUN, **options).items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        argv += [f"--{key}"] + [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
    return argv


def linked_copy(source, target):
    """A folder tree like `source` whose files are hard links to its files: files can be added, removed or renamed
    in it (not rewritten in place) without touching the shared original, and no image is copied."""
    for folder, _, names in os.walk(source):
        inside = os.path.join(str(target), os.path.relpath(folder, source))
        os.makedirs(inside, exist_ok=True)
        for name in names:
            os.link(os.path.join(folder, name), os.path.join(inside, name))
    return target


def make_image_folder(root, classes=4, train_per_class=16, val_per_class=5, size=40, seed=0):
    """Real JPEG class folders (train/ and val/) whose classes differ in colour, so a model can learn them."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label in range(classes):
            folder = os.path.join(root, split, f"class_{label}")
            os.makedirs(folder, exist_ok=True)
            for index in range(count):
                pixels = np.zeros((size, size, 3), np.int64)
                pixels[..., label % 3] = 50 * (label + 1)
                pixels += rng.integers(0, 80, pixels.shape)
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                    os.path.join(folder, f"{index:03d}.jpg"), quality=90)
    return str(root)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """4 classes x (16 train + 5 val) real 40x40 JPEGs."""
    return make_image_folder(tmp_path_factory.mktemp("images"))


def split_files(root, split):
    """(paths, labels) of a split of an image folder, labels from the sorted class folders."""
    import numpy as np

    classes = sorted(os.listdir(os.path.join(root, split)))
    rows = [(os.path.join(root, split, c, f), label) for label, c in enumerate(classes)
            for f in sorted(os.listdir(os.path.join(root, split, c)))]
    return [p for p, _ in rows], np.array([label for _, label in rows])


def eval_inputs(paths, size=32):
    """The eval preprocessing of `--image_resize SIZE --crop_pct 1 --interpolation bilinear` written with PIL and
    numpy (square images: the resize is the whole transform), float32 NCHW with ImageNet's mean and std."""
    import numpy as np
    from PIL import Image

    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    arrays = []
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), np.float64) / 255.0
        arrays.append(((pixels - mean) / std).transpose(2, 0, 1))
    return np.stack(arrays).astype(np.float32)


def script_main(path):
    """The main function of an entry script (e.g. scripts/export.py), to run it in this process."""
    import runpy

    return runpy.run_path(os.path.join(REPO_ROOT, path))["main"]


def run_in_process(main, argv):
    """main(argv) as its script runs it (errors.run_cli): a MsvisionError ends it with exit code 2 and one line."""
    from msvision.errors import run_cli as run_main

    return run_main(main, [str(arg) for arg in argv])


def run_cli(args, cwd=REPO_ROOT, timeout=900, check=True):
    """Run a CLI (train.py, validate.py, scripts/...) in a subprocess; returns the CompletedProcess."""
    done = subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


# MindSpore's dataset engine warns on stderr when the machine's memory is over 80% used, whoever uses it
MEMORY_PRESSURE_WARNING = re.compile(r"^\[WARNING\] MD\(.*\] Memory consumption is more than ")


def error_line(done, code=2, foreign=()):
    """The one line a CLI wrote to stderr on bad input, asserting it is the only line and the exit code. `foreign`:
    prefixes of lines a C library writes to the process's stderr itself (libjpeg's warnings), left out, as is
    MindSpore's warning about the machine's memory (other processes' use: not the CLI's output)."""
    lines = [line for line in done.stderr.strip().splitlines()
             if not line.startswith(tuple(foreign)) and not MEMORY_PRESSURE_WARNING.match(line)]
    assert done.returncode == code and len(lines) == 1 and lines[0].startswith("error: "), \
        f"exit {done.returncode}, stderr:\n{done.stderr[-3000:]}"
    return lines[0]


def msrun_command(log_dir, port, *args, workers=2):
    """msrun running `python ARGS` as `workers` workers on this machine (real data parallel on CPU). msrun starts its
    workers as a literal `python` from PATH: both resolve to this interpreter's (see BIN_FIRST_ON_PATH)."""
    return ["msrun", "--worker_num", str(workers), "--local_worker_num", str(workers), "--master_port", str(port),
            "--log_dir", str(log_dir), "--join", "True", "python"] + [str(a) for a in args]


def run_msrun(log_dir, port, *args, timeout=900):
    """Run msrun_command to its end; a failure shows the tail of the output."""
    done = subprocess.run(msrun_command(log_dir, port, *args), cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def checkpoint_arrays(path):
    """{name: numpy array} of a .ckpt, its text entries left out."""
    from msvision.weights.io import read_checkpoint

    return {k: v.asnumpy() for k, v in read_checkpoint(str(path)).items() if not isinstance(v, str)}


def latest_checkpoint(save_dir):
    """The path of a run's newest checkpoint (from its checkpoints.json)."""
    from msvision.weights.manager import CheckpointManager

    return CheckpointManager(str(save_dir), "", 1, "latest_k").latest()


def latest_state(save_dir):
    return checkpoint_arrays(latest_checkpoint(save_dir))


def relative_difference(ours, reference):
    """max |ours - reference| / max |reference| (0 when both are zero): the parity measure of the tests."""
    import numpy as np

    difference = np.abs(np.asarray(ours, np.float64) - reference).max()
    return float(difference / max(np.abs(reference).max(), 1e-12)) if difference else 0.0


def max_relative(ours, reference, keys=None):
    """The worst relative_difference over the entries `keys` (default: all of reference's) of two dicts."""
    return max(relative_difference(ours[k], reference[k]) for k in (reference if keys is None else keys))


def mindcv_vgg_files(folder, name, num_classes, forms, seed=0):
    """MindCV's own VGG (mindcv==0.3.0, random weights) and files of it as MindCV's tools write them: "plain"
    (save_checkpoint of the net), "train_cell" (through a loss-scaled train cell: moments and scale entries inside),
    "scalars" (the net plus global_step, learning_rate and momentum). Returns (net, {form: path})."""
    import numpy as np
    import mindspore as ms
    from mindspore import nn

    mindcv = pytest.importorskip("mindcv", reason="mindcv==0.3.0 is installed with --no-deps by .ci/run")
    ms.set_seed(seed)
    net = mindcv.create_model(name, num_classes=num_classes)
    paths = {form: os.path.join(str(folder), f"{name}-mindcv-{form}.ckpt") for form in forms}
    if "plain" in paths:
        ms.save_checkpoint(net, paths["plain"])
    if "train_cell" in paths:
        loss = nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True))
        cell = nn.TrainOneStepWithLossScaleCell(loss, nn.Momentum(net.trainable_params(), 0.01, 0.9),
                                                scale_sense=ms.Tensor(1024.0))
        ms.save_checkpoint(cell, paths["train_cell"])
    if "scalars" in paths:
        extra = {"global_step": ms.Tensor(np.array([10], np.int32)), "learning_rate": ms.Tensor(0.01),
                 "momentum": ms.Tensor(0.9)}
        ms.save_checkpoint(net, paths["scalars"], append_dict=extra)
    return net, paths
