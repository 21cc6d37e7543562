"""Which ops, at which dtypes, msvision's compiled graphs hold, and whether Ascend's AI Core runs them: the train
step of a config (models.layers keyed dropout / drop path, the loss, the optimizer, loss scaling, EMA, accumulation,
clipping), the evaluation graph and the exported (deployed) graph, each compiled by MindSpore in this process."""
import collections
import os

import numpy as np
import mindspore as ms

from msvision.ascend.graph_ops import compiled_ops
from msvision.ascend.support import lacking_dtypes, lookup
from msvision.config.kwargs import step_inputs_kwargs
from msvision.config.parse import parse_config
from msvision.models.reparam import deployed
from msvision.train.loop import build_training

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")
SMALL = ["--image_resize", "32", "--batch_size", "2", "--num_classes", "4"]
EVERY_STEP_OPTION = ["--ema", "true", "--loss_scale_type", "dynamic", "--loss_scale", "1024", "--grad_accum_steps",
                     "2", "--clip_grad", "true", "--class_weight", "inverse", "--logit_adjust_tau", "1.0",
                     "--label_smoothing", "0.1", "--mixup", "0.8", "--cutmix", "1.0"]
TINY_REPVGG = ["--model", "repvgg_a0", "--model_args", '{"num_blocks": [1, 1, 1, 1], "width_multiplier": [0.25, 0.25, '
               '0.25, 0.25]}']
# (name, train.py options): the shipped Ascend recipes at 32 px, and each random feature and step option on.
RECIPES = tuple((name, ["--config", os.path.join(CONFIGS, family, f"{name}_ascend.yaml")] + SMALL)
                for family, names in (
                    ("vgg", ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")),
                    ("repvgg", ("repvgg_a0",)),
                    ("vovnet", ("ese_vovnet19b_dw", "ese_vovnet39b", "vovnet19", "vovnet27_slim", "vovnet39",
                                "vovnet57", "vovnet99")))
                for name in names)
FEATURES = (
    ("vgg11 dropout + every step option, amp O2",
     ["--model", "vgg11", "--amp_level", "O2", "--drop_rate", "0.5"] + EVERY_STEP_OPTION + SMALL),
    ("ese_vovnet19b_dw drop path, lamb", ["--model", "ese_vovnet19b_dw", "--drop_path_rate", "0.2", "--opt", "lamb"]
     + SMALL),
) + tuple((f"ese_vovnet19b_slim_dw, {opt}", ["--model", "ese_vovnet19b_slim_dw", "--opt", opt] + SMALL)
          for opt in ("sgd", "momentum", "adamw", "adam", "rmsprop", "lars")) + (
    ("ese_vovnet19b_slim_dw, bce loss, nesterov", ["--model", "ese_vovnet19b_slim_dw", "--loss", "bce",
                                                   "--nesterov", "true"] + SMALL),
    ("ese_vovnet19b_slim_dw, eqlv2 loss", ["--model", "ese_vovnet19b_slim_dw", "--loss", "eqlv2"] + SMALL),
    ("small RepVGG custom L2, amp O2", TINY_REPVGG + ["--repvgg_custom_l2", "true", "--amp_level", "O2"] + SMALL),
    ("small RepVGG, amp O2 bfloat16 (910B)", TINY_REPVGG + ["--amp_level", "O2", "--amp_dtype", "bfloat16"] + SMALL),
)
AuditRow = collections.namedtuple("AuditRow", "op dtypes graphs origins")


def case_ops(argv, graphs=("train", "eval", "export")):
    """{graph name: OpUse list} of one config: its train step, its net in eval mode and its deployed form."""
    config = parse_config(argv)
    shape = step_inputs_kwargs(config)
    classes, batch, size = shape["num_classes"], shape["batch_size"], shape["image_size"]
    built = build_training(config, np.arange(1, classes + 1) * 10, steps_per_epoch=10, world_size=1,
                           initial_weights=False)
    images = ms.Tensor(np.zeros((batch, 3, size, size), np.float32))
    labels = ms.Tensor(np.full((batch, classes), 1.0 / classes, np.float32) if shape["mixed_targets"]
                       else np.zeros(batch, np.int32))
    found = {}
    if "train" in graphs:
        built.step.set_train(True)
        found["train"] = compiled_ops(built.step, images, labels)
    if "eval" in graphs:
        found["eval"] = compiled_ops(built.net.set_train(False), images)
    if "export" in graphs:
        found["export"] = compiled_ops(deployed(built.net.set_train(False)), images[:1])
    return found


def audit(cases, graphs=("train", "eval", "export")):
    """AuditRow(op, dtypes, graphs, origins) over the cases' graphs, one row per op and dtype set."""
    return merge((name, case_ops(argv, graphs)) for name, argv in cases)


def merge(results):
    """AuditRows from (case name, case_ops result) pairs."""
    rows = collections.OrderedDict()
    for name, found in results:
        for graph, uses in found.items():
            for use in uses:
                row = rows.setdefault((use.op, use.dtypes), (set(), set()))
                row[0].add(f"{name}: {graph}")
                row[1].add(use.origin)
    return [AuditRow(op, dtypes, sorted(where), sorted(origins))
            for (op, dtypes), (where, origins) in sorted(rows.items())]


# What a chip lacks on purpose: options that exist for the other chip, named in the README
NAMED_EXCEPTIONS = {"910": {"bfloat16": "amp_dtype bfloat16 is for the 910B: CANN lists BFLOAT16 for the Atlas A2 "
                                        "series and later only (use amp_dtype float16 on the 910)"}}


def missing_on(rows, chip):
    """The rows `chip` ("910" or "910B") does not run on its AI Core and no named exception covers: (row, why)."""
    excused = NAMED_EXCEPTIONS.get(chip, {})
    return [(row, lookup(row.op, row.dtypes, chip)) for row in rows
            if lacking_dtypes(row.op, row.dtypes, chip) - set(excused)]
