import json
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import ssl_coded

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_maps_recipes_and_eval_into_the_package_and_works_installed(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, ROOT],
        check=True,
    )
    (wheel,) = tmp_path.glob("ssl_coded-*.whl")
    assert wheel.name.startswith(f"ssl_coded-{ssl_coded.__version__}-")  # the version lives in one place
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"ssl_coded", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    folders = {"ssl_coded": ROOT / "ssl_coded", "ssl_coded/eval": ROOT / "eval", "ssl_coded/recipes": ROOT / "recipes"}
    sources = {  # every module of the checkout, where the wheel puts it: a package missing from pyproject fails here
        f"{installed}/{path.relative_to(folder).as_posix()}"
        for installed, folder in folders.items()
        for path in folder.rglob("*.py")
        if installed != "ssl_coded" or path.relative_to(folder).parts[0] not in ("eval", "recipes")
    }
    assert sorted(sources - set(names)) == []
    assert sorted(n for n in names if n.endswith(".py") and n not in sources) == []  # nothing stale from build/
    assert not [n for n in names if "bench" in n or "includes" in n]  # benchmarks and docs tools stay out

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel], check=True)
    probe = "import ssl_coded.eval.robustness.harness, ssl_coded.recipes as r; print(r.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(site)}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(site))


def test_the_core_depends_on_torch_and_numpy_alone():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(d.split(">")[0] for d in project["dependencies"]) == ["numpy", "torch"]
    extras = project["optional-dependencies"]
    assert {"pytorch-lightning", "lightly", "omegaconf"} <= {d.split(">")[0] for d in extras["train"]}
    assert {"faiss-cpu", "scikit-learn", "matplotlib"} <= {d.split(">")[0] for d in extras["eval"]}


@pytest.mark.slow
def test_a_module_of_another_checkout_is_refused(tmp_path):
    # an editable install of this checkout, with PYTHONPATH at another one holding only ssl_coded/
    other = tmp_path / "other"
    (other / "ssl_coded").mkdir(parents=True)
    (other / "ssl_coded" / "__init__.py").write_text((ROOT / "ssl_coded" / "__init__.py").read_text())
    for name in ("extras.py", "coding.py", "hook.py", "inference.py", "regularizer.py"):
        (other / "ssl_coded" / name).write_text((ROOT / "ssl_coded" / name).read_text())
    probe = (
        "import importlib.util, sys; sys.path.insert(0, sys.argv[1]); import ssl_coded;"
        f"spec = importlib.util.spec_from_file_location('ssl_coded.eval', {str(ROOT / 'eval' / '__init__.py')!r});"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(other)], capture_output=True, text=True)
    assert out.returncode != 0 and "two checkouts are mixed" in out.stderr


def dependency_closure(names: list[str]) -> set[str]:
    """Distributions the given ones need at run time (no extras), from this environment's metadata."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


@pytest.mark.slow
def test_pip_install_without_extras_gives_the_core_alone(tmp_path):
    """A fresh venv, `pip install .`: the hook imports; neither lightning nor faiss is installed.

    torch and its own dependencies are lent from this environment (a directory of links on a .pth
    path) so that the test does not download several GB; pip then sees them installed.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    lent = tmp_path / "lent"
    lent.mkdir()
    for dist in (metadata.distribution(name) for name in dependency_closure(["torch", "numpy"])):
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (lent / top).exists() and not top.endswith(".pth") and top != "..":
                (lent / top).symlink_to(source)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True
    ).stdout.strip()
    Path(site, "lent.pth").write_text(str(lent) + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", str(ROOT)], check=True, cwd=tmp_path)
    installed = json.loads(subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True,
                                          text=True, check=True).stdout)  # fmt: skip
    names = {p["name"].lower() for p in installed}
    assert "ssl-coded" in names and "torch" in names
    assert not names & {"pytorch-lightning", "lightning", "lightly", "faiss-cpu", "omegaconf", "scikit-learn"}
    probe = "from ssl_coded import CodedSmoothing, CodedSmoothingHook; print('ok')"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    out = subprocess.run([python, "-c", "import ssl_coded.training"], capture_output=True, text=True, cwd=tmp_path)
    assert "pip install 'ssl-coded[train]'" in out.stderr.strip().splitlines()[-1]
