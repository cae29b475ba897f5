"""`ssl-coded eval` of a foreign encoder needs the `eval` extra alone: neither `--help`, nor a refusal,
nor a whole evaluation imports a training framework (benchmarks/bench_cli_startup.py times it)."""

import subprocess
import sys
import textwrap

import pytest

BLOCK_TRAINING = textwrap.dedent(
    """
    import sys

    class Block:  # the training frameworks are not installed, as with `pip install 'ssl-coded[eval]'`
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"pytorch_lightning", "lightning", "lightning_fabric", "lightly", "omegaconf"}:
                raise ImportError(f"eval imported {name}")

    sys.meta_path.insert(0, Block())
    from ssl_coded.cli import main
    """
)


def run_blocked(args, cwd):
    script = BLOCK_TRAINING + f"sys.exit(main({args!r}))\n"
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


def test_a_foreign_encoders_refusal_needs_no_training_framework(tmp_path):
    done = run_blocked(["eval", "knn", "torchvision:resnet18", "--dataset", "bogus=1"], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("ssl-coded: error: data.bogus is not a key of the data section")


@pytest.mark.slow
def test_a_foreign_encoder_is_evaluated_without_a_training_framework(tmp_path):
    args = ["eval", "knn", "torchvision:resnet18", "--dataset", "max_train=60", "max_test=30", "--no-floors"]
    done = run_blocked([*args, "--out", str(tmp_path / "out"), "--device", "cpu"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "results.json").is_file()
