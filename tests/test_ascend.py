"""Ascend readiness on CPU: the compiled graphs' ops and dtypes against the 910's AI Core support (a graph holding
an op or dtype the 910 lacks fails), and scripts/ascend_check.py's arguments and report with the device calls
replaced at their one seam (check.AscendCluster)."""
import numpy as np
import mindspore as ms
import pytest

from msvision.ascend import check
from msvision.ascend.check import AscendCluster, parse_check_args, run_check
from msvision.errors import MsvisionError
from tests.conftest import run_in_process, script_main

CHECK_MAIN = script_main("scripts/ascend_check.py")
AUDIT_MAIN = script_main("scripts/ascend_audit.py")


def one_line_error(capsys, argv, main=CHECK_MAIN):
    with pytest.raises(SystemExit) as stop:
        run_in_process(main, argv)
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[WARNING]")]
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


class FakeCluster:
    """Canned figures in place of the device calls (AscendCluster's methods, same signatures)."""

    def __init__(self):
        self.calls = []

    def environment(self):
        return {"device": "Ascend910B4 (fake)", "CANN": "version=8.0.0 (fake)", "MindSpore": "2.10.0"}

    def throughput(self, model, cards, steps, data_dir, work_dir):
        self.calls.append(("throughput", model, cards, steps, data_dir))
        return {"cards": cards, "steps": steps, "ms_per_step": 31.25, "img_per_s": 8192.0, "log": "x"}

    def exact_resume(self, model, cards, data_dir, work_dir):
        self.calls.append(("resume", model, cards))
        return {"equal": model != "vgg16", "detail": "killed after the checkpoint at step 25"}

    def keyed_masks(self):
        return {"equal": True, "detail": "3 x 262144 units, 0 differ"}


def test_check_stops_off_ascend_and_on_bad_arguments_with_one_line(tmp_path, capsys):
    """On this CPU machine the real seam stops with where the check runs; bad arguments (of ascend_audit.py too) are
    one line each, exit 2, and an existing report is never overwritten."""
    data = tmp_path / "imagenet"
    (data / "train" / "n01").mkdir(parents=True)
    report = tmp_path / "report.md"
    assert "ascend_check runs on an Ascend machine" in one_line_error(
        capsys, ["--data_dir", data, "--report", report])
    assert not report.exists()
    report.write_text("an earlier report")
    cases = {"--cards 0": (["--cards", "0"], "--cards must be 1 to 4096, got 0"),
             "--steps 5": (["--steps", "5"], "--steps must be 20 to 100000, got 5"),
             "unknown model": (["--models", "vgg13", "vgg12"], "no Ascend recipe for vgg12: choose from "),
             "report exists": ([], f"report '{report}' already exists"),
             "report folder": (["--report", tmp_path / "nope" / "r.md"], "folder"),
             "cards text": (["--cards", "eight"], "argument --cards: invalid int value: 'eight'"),
             "work_dir exists": (["--work_dir", tmp_path], f"--work_dir '{tmp_path}' already exists")}
    for name, (extra, message) in cases.items():
        argv = ["--data_dir", data, "--report", report] + extra if name != "report folder" else \
            ["--data_dir", data] + extra
        assert message in one_line_error(capsys, argv), name
    assert report.read_text() == "an earlier report"
    assert f"cannot write the audit table '{tmp_path}/nope/t.md': folder" in one_line_error(
        capsys, ["--output", tmp_path / "nope" / "t.md"], AUDIT_MAIN)  # before any compilation
    options = vars(parse_check_args(["--data_dir", str(tmp_path / "missing"), "--report", str(tmp_path / "new.md")]))
    with pytest.raises(MsvisionError, match="--data_dir must hold train/<class>/ image folders"):
        run_check(FakeCluster(), **options)  # the data is checked after the device
    with pytest.raises(MsvisionError, match="ascend_check runs on an Ascend machine"):
        run_check(AscendCluster(), **options)


def test_check_report_holds_each_recipe_beside_mindcv(tmp_path):
    """The report: the versions, one throughput row per model (ms/step, img/s per card, MindCV's published figures
    where they exist), each model's exact-resume verdict and the keyed masks verdict; the seam gets the arguments."""
    data = tmp_path / "imagenet"
    (data / "train" / "n01").mkdir(parents=True)
    options = parse_check_args(["--cards", "4", "--models", "vgg13", "vgg16", "--steps", "50", "--data_dir",
                                str(data), "--report", str(tmp_path / "r.md"), "--work_dir", str(tmp_path / "runs")])
    cluster = FakeCluster()
    text = open(run_check(cluster, **vars(options)), encoding="utf-8").read()
    assert cluster.calls == [("throughput", "vgg13", 4, 50, str(data)), ("resume", "vgg13", 4),
                             ("throughput", "vgg16", 4, 50, str(data)), ("resume", "vgg16", 4)]
    assert "- device: Ascend910B4 (fake)" in text and "- CANN: version=8.0.0 (fake)" in text
    assert "| vgg13 | 4 | 50 | 31.25 | 2048 | 30.15 ms, 1061 img/s per card |" in text  # 8490 / 8 cards
    assert "| vgg16 | 4 | 50 | 31.25 | 2048 | not published |" in text
    assert "- vgg13: bit-identical (killed after" in text and "- vgg16: DIFFERS (" in text
    assert "equal to the uint32 definition (3 x 262144 units, 0 differ)" in text


def test_the_device_checks_reference_equals_keyed_dropout_here():
    """check.reference_keep (what the NPU's masks are compared with) equals KeyedDropout's masks on CPU, at counters
    past 2^31 (negative int32 patterns) too."""
    from msvision.models.layers import KeyedDropout, RNG_SEED, seek_keyed_random, to_int32

    cell = KeyedDropout(0.3)
    cell.salt = to_int32(0xDEADBEEF)
    cell.set_train(True)
    for micro_batch in (0, 7, 2 ** 28):
        seek_keyed_random(42, micro_batch, 8, 3)
        kept = cell(ms.Tensor(np.ones((16, 64), np.float32))).asnumpy() > 0
        expected = check.reference_keep((16, 64), 0.3, (micro_batch * 8 + 3) & 0xFFFFFFFF,
                                        int(RNG_SEED.asnumpy()) & 0xFFFFFFFF, cell.salt)
        assert np.array_equal(kept, expected), micro_batch


def test_support_table_refuses_what_the_910_lacks():
    """The table's verdicts where the chips differ: int64 bitwise ops (the old keyed dropout) and bfloat16 are
    910B-only; an op without a row is refused on both."""
    from msvision.ascend.support import lookup

    assert "BitwiseXor at int64: not on the 910's AI Core" in lookup("BitwiseXor", ("int64",), "910")
    assert lookup("BitwiseXor", ("int64",), "910B") == "" and lookup("BitwiseXor", ("int32",), "910") == ""
    assert "bfloat16" in lookup("Conv2D", ("bfloat16",), "910") and lookup("Conv2D", ("bfloat16",), "910B") == ""
    assert "has no row" in lookup("FancyNewOp", ("float32",), "910B")


def test_compiled_train_steps_hold_only_ops_the_910_ai_core_runs():
    """The train steps MindSpore compiles here (IR dump) for VGG with dropout and every step option (amp O2, EMA,
    dynamic loss scale, accumulation, clipping, class weights, logit adjustment, label smoothing, mixup/cutmix), a
    VoVNet with drop path and LAMB, and a RepVGG with the custom L2 under amp O2 (which did not compile before the
    audit: amp wraps BatchNorm): every op/dtype is in the support table for the 910 and the 910B. The keyed dropout
    hash is there, at int32 (the int64 form it had fails the 910)."""
    from msvision.ascend.audit import EVERY_STEP_OPTION, SMALL, TINY_REPVGG, audit, missing_on

    ms.set_context(mode=ms.GRAPH_MODE)
    rows = audit([("vgg11", ["--model", "vgg11", "--amp_level", "O2", "--drop_rate", "0.5"] + EVERY_STEP_OPTION
                   + SMALL),
                  ("vovnet", ["--model", "ese_vovnet19b_slim_dw", "--drop_path_rate", "0.2", "--opt", "lamb"] + SMALL),
                  ("repvgg", TINY_REPVGG + ["--repvgg_custom_l2", "true", "--amp_level", "O2"] + SMALL)],
                 graphs=("train",))
    assert missing_on(rows, "910") == [] and missing_on(rows, "910B") == []
    hashing = [row for row in rows if any("models/layers.py" in origin for origin in row.origins)]
    assert {("BitwiseXor", ("int32",)), ("RightShift", ("int32",)), ("Mul", ("int32",))} <= \
        {(row.op, row.dtypes) for row in hashing}
    assert {"vgg11: train", "vovnet: train"} <= {graph for row in hashing for graph in row.graphs}  # both layers


@pytest.mark.parametrize("finite_share", [0.85, 0.97])
def test_select_loss_scaler_follows_mindsporess_dynamic_scaler(finite_share):
    """The dynamic loss scale of the train step (SelectLossScaler, no int32 remainder or bool x int32 multiply in
    its graph) takes MindSpore's DynamicLossScaler's scale and window counter at every one of 150 random steps."""
    from mindspore.amp import DynamicLossScaler
    from msvision.train.step import SelectLossScaler

    rng = np.random.default_rng(1)
    reference, ours = DynamicLossScaler(1024.0, 2, 5), SelectLossScaler(1024.0, 2, 5)
    scales = set()
    for step in range(150):
        finite = ms.Tensor(bool(rng.random() < finite_share))
        reference.adjust(finite)
        ours.adjust(finite)
        assert (ours.scale_value.asnumpy(), ours.counter.asnumpy()) == \
            (reference.scale_value.asnumpy(), reference.counter.asnumpy()), step
        scales.add(float(ours.scale_value.asnumpy()))
    assert len(scales) > 3  # it grew and shrank


def test_adam_bias_correction_in_float32_equals_torch_adam(torch_reference):
    """Adam's bias corrections are computed in float32 (-expm1(t log beta): the AI Core has no float64): 12 steps on
    one tensor equal torch.optim.Adam in float64 within float32 rounding (3.2e-6 of the total change, the same to
    every digit as with the float64 corrections it replaces; bound 5e-6), beta2 = 0.999 making the first steps'
    1 - beta2^t the hard case."""
    torch = torch_reference[0]
    from msvision.optim.factory import create_optimizer

    rng = np.random.default_rng(2)
    start = rng.standard_normal(64)
    grads = [rng.standard_normal(64) for _ in range(12)]
    param = ms.Parameter(ms.Tensor(start.astype(np.float32)), name="w")
    optimizer = create_optimizer([param], "adam", lr=0.01, weight_decay=0.0)
    reference = torch.tensor(start, requires_grad=True)
    torch_optimizer = torch.optim.Adam([reference], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    for grad in grads:
        optimizer((ms.Tensor(grad.astype(np.float32)),))
        reference.grad = torch.tensor(grad)
        torch_optimizer.step()
    expected = reference.detach().numpy()
    change = np.abs(param.asnumpy() - expected).max() / np.abs(expected - start).max()
    assert change < 5e-6, change
