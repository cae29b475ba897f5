"""`ssl-coded eval` of a foreign encoder needs the `eval` extra alone: neither `--help`, nor a refusal,
nor a whole evaluation imports a training framework (benchmarks/bench_cli_startup.py times it)."""

import subprocess
import sys
import textwrap

import pytest

LIGHTNING = ("pytorch_lightning", "lightning", "lightning_fabric", "lightly")
TRAINING = (*LIGHTNING, "omegaconf")  # what the `train` extra adds to `eval`'s


def run_blocked(args, cwd, blocked=TRAINING):
    """`ssl-coded ARGS` in a process where importing any of `blocked` fails (found, so installed, but refused)."""
    script = textwrap.dedent(
        f"""
        import importlib.abc, importlib.machinery, sys

        class Refuse(importlib.abc.Loader):
            def create_module(self, spec):
                raise ImportError(f"imported {{spec.name}}")

            def exec_module(self, module):
                pass

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    return importlib.machinery.ModuleSpec(name, Refuse())
                return None

        sys.meta_path.insert(0, Block())
        from ssl_coded.cli import main
        sys.exit(main({args!r}))
        """
    )
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True)


def test_eval_help_imports_no_lightning(tmp_path):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ssl_coded.cli", "eval", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "ENCODER" in done.stdout
    imported = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert "torch" in imported and not [m for m in imported if m.split(".")[0] in ("pytorch_lightning", "lightly")]


@pytest.mark.slow  # seven interpreters
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["eval", "knn", "torchvision:resnet18", "--dataset", "bogus=1"], "data.bogus is not a key"),
        (["eval", "knn", "runs/none"], "runs/none is neither a run directory"),
        (["pretrain", "simclr-digits", "coded.wieght=1"], "coded.weight"),
        (["pretrain", "simclr-digits", "augment.brightness=-3"], "augment.brightness=-3.0 must be in [0, 1]"),
        (["train", "supervised-digits", "--regularizers", "noise"], "add --compare"),
        (["attack", "runs/none", "--set", "attack.eps=[2.0]"], "attack.eps=[2.0] must each be in (0, 1]"),
        (["study", "none.yaml"], "none.yaml"),
    ],
)
def test_a_refusal_comes_back_before_any_training_framework_is_imported(tmp_path, args, needle):
    done = run_blocked(args, tmp_path, TRAINING if args[0] == "eval" else LIGHTNING)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssl-coded: error:") and needle in lines[0], done.stderr
    assert not any(tmp_path.iterdir())  # and nothing was written


@pytest.mark.slow
def test_a_foreign_encoder_is_evaluated_without_a_training_framework(tmp_path):
    args = ["eval", "knn", "torchvision:resnet18", "--dataset", "max_train=60", "max_test=30", "--no-floors"]
    done = run_blocked([*args, "--out", str(tmp_path / "out"), "--device", "cpu"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "results.json").is_file()
