"""The ops, dtypes and source lines of a graph as MindSpore compiles it: its own IR dump (save_graphs) of the
validated frontend graph, the device-independent graph every backend (CPU, GPU, Ascend GE) receives."""
import collections
import glob
import os
import re
import tempfile

# graph plumbing, not kernels: control and side-effect bookkeeping, tuples, calls of subgraphs
PLUMBING = {"Return", "Depend", "UpdateState", "Load", "MakeTuple", "TupleGetItem", "Partial", "Switch",
            "StopGradient", "J", "MakeList", "ListGetItem", "tuple_getitem", "make_tuple", "Identity"}
NODE = re.compile(r"^\s+%\d+\([^)]*\) = (?:PrimFunc_)?([A-Za-z_][\w]*)(?:\(|\s)")
TENSOR = re.compile(r"<(?:Ref\[)?Tensor\[(\w+)\]")
SOURCE = re.compile(r"# In file (\S+?):(\d+)")

OpUse = collections.namedtuple("OpUse", "op dtypes origin")


def _origin(comments, package_root):
    """The last msvision source line among a node's '# In file' comments (the most specific), else the first."""
    lines = [(path, line) for path, line in (SOURCE.match(c).groups() for c in comments if SOURCE.match(c))]
    ours = [(os.path.relpath(p, package_root), n) for p, n in lines if p.startswith(package_root)]
    if ours:
        return "%s:%s" % ours[-1]
    return "%s:%s" % (os.path.basename(lines[0][0]), lines[0][1]) if lines else "?"


def parse_ir(text, package_root):
    """OpUse(op, dtypes, origin) of every kernel node of an IR dump: dtypes are the tensor dtypes of its inputs and
    outputs (lower case, sorted, deduplicated); origin the msvision source line it comes from. A node's line may run
    over several (a constant tensor's values); its type line starts with ':' and its '#' comments follow."""
    uses, lines = [], text.splitlines()
    for number, line in enumerate(lines):
        match = NODE.match(line)
        if not match or match.group(1) in PLUMBING:
            continue
        types, comments = "", []
        for extra in lines[number + 1:]:
            stripped = extra.strip()
            if NODE.match(extra) or stripped.startswith(("}", "Return(")):
                break
            if not types and stripped.startswith(": ("):
                types = stripped
            elif types and stripped.startswith("#"):
                comments.append(stripped)
            elif types:
                break
        dtypes = tuple(sorted({d.lower() for d in TENSOR.findall(types)}))
        uses.append(OpUse(match.group(1), dtypes, _origin(comments, package_root)))
    return uses


def compiled_ops(cell, *inputs):
    """OpUse rows of `cell` compiled (not run) on `inputs` in the process's mode, read from MindSpore's IR dump.
    The dump is switched on through set_context: MindSpore 2.10 reads MS_DEV_SAVE_GRAPHS once, at the process's first
    compilation (set later it writes nothing; measured), while the context setting applies to each compilation. A
    graph whose CPU kernel selection fails (a dtype only devices run) is still read: its validated form is complete."""
    import mindspore as ms

    import msvision

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(msvision.__file__)))
    passes = os.environ.get("MS_DEV_DUMP_IR_PASSES")
    with tempfile.TemporaryDirectory(prefix="msvision_ir_") as folder:
        os.environ["MS_DEV_DUMP_IR_PASSES"] = "validate"  # that graph only (all ~100 passes: 4x the compile time)
        ms.set_context(save_graphs=True, save_graphs_path=folder)
        try:
            cell.compile(*inputs)
        except (TypeError, RuntimeError) as err:  # CPU lacks a kernel a device has (bfloat16 convolutions): the
            if "Kernel select failed" not in str(err):  # validated graph was written before kernel selection
                raise
        finally:
            ms.set_context(save_graphs=False)
            if passes is None:
                os.environ.pop("MS_DEV_DUMP_IR_PASSES")
            else:
                os.environ["MS_DEV_DUMP_IR_PASSES"] = passes
        dumps = sorted(glob.glob(os.path.join(folder, "**", "*_validate_*.ir"), recursive=True))
        if not dumps:
            raise RuntimeError(f"MindSpore wrote no validated graph under {folder}")
        with open(dumps[-1], encoding="utf-8") as handle:
            return parse_ir(handle.read(), package_root)
