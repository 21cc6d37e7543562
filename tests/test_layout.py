"""The package's shape: imports go one way (no cycle between modules or between packages, counting imports inside
functions too), and nothing below the entry points reads the parsed command line."""
import ast
import os

import numpy as np

from tests.conftest import REPO_ROOT

PACKAGE = os.path.join(REPO_ROOT, "msvision")


def _module_name(path):
    relative = os.path.relpath(path, REPO_ROOT)[:-len(".py")].replace(os.sep, ".")
    return relative[:-len(".__init__")] if relative.endswith(".__init__") else relative


def import_graph():
    """{module: {msvision modules it imports}} from every import statement of every file, nested ones included."""
    files = [os.path.join(folder, name) for folder, _, names in os.walk(PACKAGE) for name in names
             if name.endswith(".py")]
    modules = {_module_name(path): path for path in files}
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from package import submodule` depends on the submodule; `from module import name` on the module
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in modules else node.module)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def find_cycle(graph):
    """One cycle of the graph as a list of nodes, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def package_of(module):
    """msvision.weights.io -> msvision.weights; a top-level module (msvision.files) is its own package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_no_import_cycle_between_modules_or_packages():
    graph = import_graph()
    assert "msvision.models._factory" in graph and "msvision.weights.io" in graph["msvision.models._factory"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    packages = {}
    for module, targets in graph.items():
        if module == "msvision":  # the package's public face imports what it re-exports
            continue
        packages.setdefault(package_of(module), set()).update(
            package_of(t) for t in targets if package_of(t) != package_of(module) and t != "msvision")
    assert find_cycle(packages) is None, " -> ".join(find_cycle(packages))
    assert "msvision.models" not in packages["msvision.weights"]  # weights sit below models


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_only_config_and_the_entry_bodies_read_the_namespace():
    """A function below the command line takes named arguments: no `args` parameter outside config/, cli/ and the
    bodies of train.py and validate.py (train/loop.py, eval/validate.py)."""
    allowed = {"msvision.config.parse", "msvision.config.kwargs", "msvision.cli.checkpoint", "msvision.train.loop",
               "msvision.eval.validate"}
    readers = []
    for module in import_graph():
        path = os.path.join(REPO_ROOT, *module.split(".")) + ".py"
        if not os.path.exists(path):
            path = os.path.join(REPO_ROOT, *module.split("."), "__init__.py")
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and module not in allowed:
                if any(arg.arg == "args" for arg in node.args.args):
                    readers.append(f"{module}.{node.name}")
    assert readers == []


def readme_python_block():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    models = text[text.index("\n## Models\n"):]
    return models[models.index("```python\n") + len("```python\n"):models.index("\n```", models.index("```python"))]


def test_readme_python_example_runs_as_written():
    """The README's library example (create_model, reset_classifier, lr_schedule, create_optimizer(net, "lamb",
    ...), open_split, train_loader) runs in a Python process with no command line, and builds what it says."""
    from msvision.optim.rules import Lamb

    scope = {}
    exec(compile(readme_python_block(), "README.md", "exec"), scope)  # pylint: disable=exec-used
    net, optimizer, lrs, loader = scope["net"], scope["optimizer"], scope["lrs"], scope["loader"]
    assert net.get_classifier().out_channels == 4 and net.head.fc.weight.name == "head.fc.weight"
    assert isinstance(optimizer, Lamb) and len(lrs) == 5 * 44 and lrs[43] == np.float32(0.1)
    decay = {p.name: float(d.asnumpy()) for p, d in zip(optimizer.parameters, optimizer.weight_decay)}
    assert decay["stem.0.conv.weight"] == np.float32(0.05) and decay["stem.0.bn.gamma"] == 0.0
    images, labels = next(loader.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert images.shape == (32, 3, 32, 32) and labels.shape == (32,)


def test_both_split_kinds_implement_the_split_protocol(image_folder, tmp_path):
    from msvision.data.cifar import write_cifar
    from msvision.data.dataset import open_split
    from msvision.data.split import Split, class_counts

    folder = open_split("train", data_dir=image_folder)
    archive = tmp_path / "cifar-10-batches-bin"
    pixels = np.zeros((6, 32, 32, 3), np.uint8)
    write_cifar(str(archive), "cifar10", {"data_batch_1.bin": (pixels, np.array([0, 1, 1, 2, 2, 2]))})
    cifar = open_split("train", dataset="cifar10", data_dir=str(tmp_path))
    for split in (folder, cifar):
        assert isinstance(split, Split), type(split).__name__
    assert class_counts(folder).tolist() == [16, 16, 16, 16]
    assert class_counts(cifar).tolist() == [1, 2, 3] + [0] * 7
    assert cifar.reader()(4).shape == (32, 32, 3) and len(folder.reader()(0)) > 100  # an image, file bytes
