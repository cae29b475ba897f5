"""The layers of the package and the one direction their imports may run (README, "Architecture").

    core      ssl_coded/*.py but the top ones            torch, numpy and the standard library only
    data      ssl_coded/data/                            core (never a training framework)
    models    ssl_coded/models/                          core (torchvision and timm by name, lazily)
    training  ssl_coded/training/                        core, data, models
    eval      eval/ (ssl_coded.eval)                     core, data, models
    top       ssl_coded/cli/, ssl_coded/{commands,attacks,embed,encoders,export,runs,study}.py  everything below;
              nothing imports cli/

Every import in every module is read from its source (lazy ones inside functions too), so an upward
import fails here before any code runs; a subprocess then imports the core with every third-party
package but torch and numpy blocked.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP = {
    "ssl_coded.cli",
    "ssl_coded.commands",
    "ssl_coded.attacks",
    "ssl_coded.encoders",
    "ssl_coded.export",
    "ssl_coded.embed",
    "ssl_coded.runs",
    "ssl_coded.study",
}
MAY_IMPORT = {
    "core": {"core"},
    "data": {"core", "data"},
    "models": {"core", "models"},
    "training": {"core", "data", "models", "training", "recipes"},
    "eval": {"core", "data", "models", "eval"},
    "recipes": {"core"},
    "top": {"core", "data", "models", "training", "eval", "recipes", "top"},
}
CORE_THIRD_PARTY = {"torch", "numpy"}
TRAINING_ONLY = {"pytorch_lightning", "lightning", "lightning_fabric", "lightly", "omegaconf"}  # never in eval


def layer_of(module: str) -> str | None:
    """The layer of a module of this package (None: not ours)."""
    if module in TOP or module.startswith("ssl_coded.cli."):
        return "top"
    for prefix, layer in (
        ("ssl_coded.data", "data"),
        ("ssl_coded.models", "models"),
        ("ssl_coded.training", "training"),
        ("ssl_coded.eval", "eval"),
        ("ssl_coded.recipes", "recipes"),
    ):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return "core" if module == "ssl_coded" or module.startswith("ssl_coded.") else None


def package_modules() -> dict[str, Path]:
    """Module name -> source file, following pyproject's package-dir remap (eval/, recipes/)."""
    roots = {"ssl_coded": ROOT / "ssl_coded", "ssl_coded.eval": ROOT / "eval", "ssl_coded.recipes": ROOT / "recipes"}
    modules = {}
    for package, folder in roots.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if layer_of(name) == layer_of(package) or package == "ssl_coded":
                modules.setdefault(name, path)
    return modules


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every module a source imports, anywhere in it (relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            found.add(base)
            # `from ssl_coded import commands` imports a module of another layer than its package's
            found |= {f"{base}.{a.name}" for a in node.names if layer_of(f"{base}.{a.name}") != layer_of(base)}
    return found


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    layer = layer_of(module)
    problems = []
    for name in sorted(imported_modules(source, module, is_package)):
        target = layer_of(name)
        if target is not None and target not in MAY_IMPORT[layer]:
            problems.append(f"{module} ({layer}) imports {name} ({target})")
        top_level = name.split(".")[0]
        if layer == "core" and target is None and top_level not in CORE_THIRD_PARTY | set(sys.stdlib_module_names):
            problems.append(f"{module} (core) imports {top_level}: the core needs only torch and numpy")
        if layer in ("eval", "data") and top_level in TRAINING_ONLY:
            problems.append(f"{module} ({layer}) imports {top_level}: a training framework; {layer} never needs one")
    return problems


def test_every_import_runs_down_the_layers():
    modules = package_modules()
    assert {"ssl_coded.coding", "ssl_coded.data.splits", "ssl_coded.training.loop", "ssl_coded.eval.report"} <= set(
        modules
    )
    problems = [
        p for name, path in modules.items() for p in violations(name, path.read_text(), path.name == "__init__.py")
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("ssl_coded.hook", "from ssl_coded.training.config import RecipeConfig"),
        ("ssl_coded.training.loop", "def f():\n    from ssl_coded.eval.report import evaluate"),
        ("ssl_coded.eval.report", "import ssl_coded.training.checkpoints"),
        ("ssl_coded.eval.features", "from ssl_coded import commands"),
        ("ssl_coded.coding", "import pytorch_lightning"),
        ("ssl_coded.training.summary", "from ..eval import report"),
        ("ssl_coded.eval.robustness.seeds", "from omegaconf import OmegaConf"),
        ("ssl_coded.data.splits", "from ssl_coded.training.config import RecipeConfig"),
        ("ssl_coded.data.idx", "def f():\n    from ssl_coded.eval import features"),
        ("ssl_coded.data.images", "import pytorch_lightning"),
    ],
)
def test_an_upward_import_is_caught(module, source):
    assert violations(module, source)


def test_the_core_imports_with_only_torch_and_numpy():
    script = textwrap.dedent(
        """
        import importlib.abc, importlib.machinery, sys
        ALLOWED = {"torch", "numpy", "ssl_coded"}

        class Refuse(importlib.abc.Loader):  # found (torch probes what exists), refused when imported
            def create_module(self, spec):
                raise ImportError(f"core imported {spec.name}")

            def exec_module(self, module):
                pass

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                top = name.split(".")[0]
                if top in ALLOWED or top in sys.stdlib_module_names or top.startswith("_"):
                    return None
                if name.startswith(("ssl_coded.training", "ssl_coded.eval", "ssl_coded.cli", "ssl_coded.commands",
                            "ssl_coded.data")):
                    return importlib.machinery.ModuleSpec(name, Refuse())
                # torch's own optional imports (sympy, typing_extensions, ...) stay allowed: only the
                # packages of the extras are blocked
                blocked = {"pytorch_lightning", "lightning", "lightning_fabric", "lightly", "omegaconf", "faiss",
                           "sklearn", "matplotlib", "scipy", "torchvision", "tqdm", "PIL", "yaml"}
                if top in blocked:
                    return importlib.machinery.ModuleSpec(name, Refuse())
                return None

        sys.meta_path.insert(0, Block())
        import torch
        from ssl_coded import CodedSmoothing, CodedSmoothingHook, CodingScheme, randomized_coded_predict
        import ssl_coded.search.knn, ssl_coded.search.exact_search, ssl_coded.io, ssl_coded.extras
        model = torch.nn.Sequential(torch.nn.Linear(4, 3))
        hook = CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule="0")
        model(torch.randn(8, 4))
        assert hook.pop_penalty() > 0
        print("core ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "core ok" in done.stdout, done.stderr


def test_the_data_layer_loads_without_a_training_framework():
    script = textwrap.dedent(
        """
        import sys

        class Block:  # a training framework is never imported by the data layer
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"pytorch_lightning", "lightning", "lightning_fabric", "lightly", "omegaconf"}:
                    raise ImportError(f"data imported {name}")

        sys.meta_path.insert(0, Block())
        from ssl_coded.data import DataConfig, load_splits
        splits = load_splits(DataConfig(name="digits", max_train=100, max_test=50))
        assert len(splits.train) == 100 and splits.num_classes == 10
        print("data ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "data ok" in done.stdout, done.stderr


def test_nothing_imports_the_command_line():
    modules = package_modules()
    assert {"ssl_coded.cli", "ssl_coded.cli.eval", "ssl_coded.cli.pretrain"} <= set(modules)
    importers = [
        f"{name} imports {target}"
        for name, path in modules.items()
        if not name.startswith("ssl_coded.cli")
        for target in imported_modules(path.read_text(), name, path.name == "__init__.py")
        if target == "ssl_coded.cli" or target.startswith("ssl_coded.cli.")
    ]
    assert not importers, importers
