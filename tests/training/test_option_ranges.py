"""Options out of their range are refused where the recipe is parsed, naming the full key (one test per kind)."""

import dataclasses
import re

import pytest

from ssl_coded.attacks import run_attack_command
from ssl_coded.training.config import ConfigError, RecipeConfig
from ssl_coded.training.methods import METHODS, method_config
from ssl_coded.training.recipes import load_config, with_overrides


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("augment.brightness=-3.0", "augment.brightness=-3.0 must be in [0, 1]"),
        ("augment.brightness=nan", "augment.brightness=nan must be in [0, 1]"),
        ("augment.contrast=1.5", "augment.contrast=1.5 must be in [0, 1]"),
        ("augment.contrast=inf", "augment.contrast=inf must be in [0, 1]"),
        ("augment.horizontal_flip=2", "augment.horizontal_flip=2.0 must be in [0, 1]"),
        ("model.pool=0", "model.pool=0 must be >= 1"),
        ("model.vit_heads=0", "model.vit_heads=0 must be >= 1"),
        ("trainer.accelerator=tpu", "trainer.accelerator='tpu' is not one of auto, cpu, gpu, cuda, mps"),
        ("seed=-1", "seed=-1 must be in [0, 2**32 - 1]"),
        ("seed=4294967296", "seed=4294967296 must be in [0, 2**32 - 1]"),
        ("data.split_seed=-1", "data.split_seed=-1 must be in [0, 2**32 - 1]"),
        ("attack.eps=[0.1,-0.1]", "attack.eps=[0.1, -0.1] must each be in (0, 1]"),
        ("attack.eps=[nan]", "attack.eps=[nan] must each be in (0, 1]"),
        ("attack.eps=[2.0]", "attack.eps=[2.0] must each be in (0, 1]"),
        ("attack.eps=[0]", "attack.eps=[0.0] must each be in (0, 1]"),
        ("attack.eps=[]", "attack.eps=[] names no radius"),
        ("attack.sanity_eps=-0.5", "attack.sanity_eps=-0.5 must be in (0, 1]"),
        ("attack.sanity_eps=nan", "attack.sanity_eps=nan must be in (0, 1]"),
        ("attack.sanity_eps=1.5", "attack.sanity_eps=1.5 must be in (0, 1]"),
    ],
)
def test_out_of_range_options_name_the_full_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("simclr-digits", [override])


def _float_keys(node: object, prefix: str = "") -> list[str]:
    """Every float option of the schema, by walking the dataclasses (not the list the checks use)."""
    keys = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            keys += _float_keys(value, f"{prefix}{f.name}.")
        elif isinstance(value, float):
            keys.append(f"{prefix}{f.name}")
    return keys


# every float key of the schema with a recipe that has it: the method sections' own, each with its method
FLOAT_KEYS = [("simclr-digits", key) for key in _float_keys(RecipeConfig())] + [
    (f"{name}-digits", key) for name in METHODS for key in _float_keys(method_config(name)(), "method.")
]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(("recipe", "key"), FLOAT_KEYS)
def test_every_float_option_refuses_nan_and_inf(recipe, key, value):
    with pytest.raises(ConfigError, match=re.escape(f"{key}={value}")):
        load_config(recipe, [f"{key}={value}"])


def test_the_attack_commands_overrides_are_checked_too(tmp_path):
    # `ssl-coded attack RUN --set ...` checks its overrides before any run is read, and applies them to
    # each run's recipe with with_overrides: both refuse a radius outside (0, 1]
    with pytest.raises(ConfigError, match=re.escape("attack.sanity_eps=nan must be in (0, 1]")):
        run_attack_command([str(tmp_path)], None, ["attack.sanity_eps=nan"])
    config = load_config("supervised-digits")
    with pytest.raises(ConfigError, match=re.escape("attack.eps=[-0.1, 0.05] must each be in (0, 1]")):
        with_overrides(config, ["attack.eps=[-0.1,0.05]"])
    assert with_overrides(config, ["attack.eps=[0.01,1.0]"]).attack.eps == [0.01, 1.0]  # both ends of (0, 1]
