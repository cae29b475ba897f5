"""Each method's recipe section is its own typed config, declared beside its model with its bounds: a
key of another method, a value out of its bounds or of the wrong type is refused, naming the method's keys."""

import dataclasses
import subprocess
import sys

import pytest

from ssl_coded.training.config import ConfigError, parse_yaml, to_yaml
from ssl_coded.training.methods import METHODS, get_method, method_config
from ssl_coded.training.recipes import load_config


@pytest.mark.parametrize(
    ("recipe", "override", "message"),
    [
        ("mae-digits", "method.mask_ratio=1.0", "method.mask_ratio=1.0 must be in (0, 1)"),
        ("byol-digits", "method.momentum_end=1.5", "method.momentum_end=1.5 must be in [0, 1]"),
        ("simclr-digits", "method.temperature=0", "method.temperature=0.0 must be > 0"),
        ("mae-digits", "method.decoder_depth=0", "method.decoder_depth=0 must be >= 1"),
        ("supervised-digits", "method.regularizer=cutout", "method.regularizer='cutout' is not one of erm, mixup"),
        ("simclr-digits", "method.mask_ratio=0.5", "method.mask_ratio is not a key of simclr (a key of mae)"),
        ("byol-digits", "method.temperature=0.5", "byol's keys: name, projection_dim, hidden_dim, momentum_start"),
        ("simclr-digits", "method.temperature=warm", "key 'method.temperature'"),
        ("simclr-digits", "method.name=swav2", "method.name='swav2' is not one of simclr, byol, mae, supervised"),
    ],
)
def test_each_method_checks_its_own_keys(recipe, override, message):
    with pytest.raises(ConfigError) as info:
        load_config(recipe, [override])
    assert message in str(info.value)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_declares_a_config_and_a_model_by_its_name(name):
    config = method_config(name)()
    assert config.name == name and dataclasses.is_dataclass(config)
    assert all(key in {f.name for f in dataclasses.fields(config)} for key in (*config.BOUNDS, *config.CHOICES))
    assert get_method(name).__module__ == f"ssl_coded.training.methods.{METHODS[name]}.model"


def test_changing_the_method_by_override_retypes_its_section():
    with pytest.raises(ConfigError, match=r"method\.temperature is not a key of byol \(a key of simclr, [^)]*\)"):
        load_config("simclr-digits", ["method.name=byol"])  # the recipe's temperature would be silently unused
    with pytest.raises(ConfigError, match=r"method\.regularizer is not a key of simclr"):  # the recipe's own keys
        load_config("supervised-digits", ["method.name=simclr"])


def test_a_recipe_stored_with_every_methods_keys_still_reads():
    """Stored recipes (checkpoints, config.yaml) from before the per-method sections held every method's
    keys at their defaults; a stored one keeps its method's keys and drops the others'."""
    config = load_config("byol-digits", ["method.momentum_start=0.9"])
    flat = to_yaml(config).replace("method:\n", "method:\n  temperature: 0.2\n  mask_ratio: 0.75\n  regularizer: erm\n")
    assert parse_yaml(flat) == config


def test_checking_a_recipe_imports_no_method_model():
    code = (
        "import sys; from ssl_coded.training.recipes import load_config; "
        "[load_config(r) for r in ('simclr-digits', 'byol-digits', 'mae-digits', 'supervised-digits')]; "
        "print(sorted(m for m in sys.modules if m.startswith(('ssl_coded.training.methods.base', 'pytorch_lightning',"
        " 'lightly')) or (m.startswith('ssl_coded') and m.endswith('.model'))))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
