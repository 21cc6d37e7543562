"""Device, execution mode and msrun data-parallel setup; rank/world helpers."""
import os

import mindspore as ms
from mindspore.communication import get_group_size, get_rank, init

from msvision.errors import MsvisionError

_STATE = {"rank": 0, "world": 1}


def launched_by_msrun():
    """True inside a process started by msrun: a worker, or the scheduler (whose init() serves the cluster)."""
    return os.environ.get("MS_ROLE") in ("MS_WORKER", "MS_SCHED")


def resolve_device(device_target):
    """'auto' is the device the installed MindSpore package is built for (Ascend, GPU or CPU)."""
    return ms.get_context("device_target") if device_target == "auto" else device_target


def resolve_jit_level(jit_level, device):
    """(level, why): 'auto' is O2 on Ascend (whole-graph sink, MindCV's published setting) and O0 elsewhere."""
    if jit_level != "auto":
        return jit_level, "set by jit_level"
    if device == "Ascend":
        return "O2", "auto on Ascend: whole-graph sink, as MindCV's published runs"
    return "O0", f"auto on {device}: kernel by kernel, O1 measured slower on CPU"


def resolve_sink_mode(sink_mode, device, grad_accum_steps):
    """(on, why) for dataset_sink_mode. 'auto' sinks on Ascend and GPU; MindSpore refuses data sinking on CPU."""
    if sink_mode == "false":
        return False, "set by dataset_sink_mode"
    available = device in ("Ascend", "GPU")
    if sink_mode == "true" and not available:
        raise MsvisionError(f"dataset_sink_mode true needs Ascend or GPU (MindSpore refuses data sinking on {device}): "
                            f"use dataset_sink_mode auto or false")
    if available and grad_accum_steps > 1:
        if sink_mode == "true":
            raise MsvisionError("dataset_sink_mode true runs whole optimizer steps on the device: set "
                                "grad_accum_steps 1, or dataset_sink_mode auto")
        return False, "auto: not with grad_accum_steps > 1; sink_size steps per host iteration, one call per step"
    if not available:
        return False, (f"auto: sink mode is not available on {device}; the loop keeps its structure, sink_size steps "
                       f"per host iteration, one call per step")
    return True, f"{'auto on ' + device if sink_mode == 'auto' else 'set by dataset_sink_mode'}: mindspore.data_sink"


def setup_device(device_target="auto", mode=0, jit_level="auto", seed=42):
    """Apply device_target, mode (0 GRAPH, 1 PYNATIVE) and jit_level; under msrun initialise data-parallel training;
    seed MindSpore (the same seed on every rank: identical initial weights).

    Returns (device, jit level in force, why it was chosen)."""
    device = resolve_device(device_target)
    jit_level, why = resolve_jit_level(jit_level, device)
    try:
        ms.set_device(device)
    except RuntimeError:  # a process that already ran kernels (a notebook, a second command in-process) keeps its
        if ms.get_context("device_target") != device:  # device: MindSpore refuses to set it again after that
            raise
    ms.set_context(mode=ms.GRAPH_MODE if mode == 0 else ms.PYNATIVE_MODE, jit_config={"jit_level": jit_level})
    if launched_by_msrun():
        init()
        _STATE["rank"], _STATE["world"] = get_rank(), get_group_size()
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                     device_num=_STATE["world"])
    ms.set_seed(seed)
    return device, jit_level, why


def rank():
    return _STATE["rank"]


def world_size():
    return _STATE["world"]


def is_main_process():
    return _STATE["rank"] == 0
