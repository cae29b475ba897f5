import re

import pytest

from ssl_coded.training.config import ConfigError, available_recipes
from ssl_coded.training.recipes import load_config


def test_every_recipe_loads_and_validates():
    names = available_recipes()
    assert {"simclr-digits", "byol-digits", "mae-digits"} <= set(names)
    for name in names:
        config = load_config(name)
        assert config.name == name and config.method.name in name


def test_overrides_are_typed():
    config = load_config("simclr-digits", ["trainer.max_epochs=3", "coded.enabled=true", "coded.weight=0.25"])
    assert config.trainer.max_epochs == 3 and config.coded.enabled is True and config.coded.weight == 0.25


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(ConfigError) as info:
        load_config("simclr-digits", ["coded.wieght=0.1"])
    message = str(info.value)
    assert "wieght" in message and "coded.weight" in message and "coded.kind" in message and "\n" not in message


def test_wrong_type_and_bad_choices_are_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer\.max_epochs"):
        load_config("simclr-digits", ["trainer.max_epochs=many"])
    with pytest.raises(ConfigError, match=r"coded.kind='chebfun' is not one of spline, berrut"):
        load_config("simclr-digits", ["coded.kind=chebfun"])
    with pytest.raises(ConfigError, match="is not key=value"):
        load_config("simclr-digits", ["coded.enabled"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  depth: 3\n")
    with pytest.raises(ConfigError, match=r"valid keys here: model.backbone"):
        load_config(str(bad))


def test_unknown_recipe_lists_the_recipes():
    with pytest.raises(ConfigError, match=r"unknown recipe 'simclr-imagenet'; valid recipes: .*simclr-digits"):
        load_config("simclr-imagenet")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.name=swav2", "method.name='swav2' is not one of simclr, byol, mae"),
        ("data.name=mnist", "data.name='mnist' is not one of"),
        ("model.backbone=vgg", "model.backbone='vgg' is not one of"),
        ("data.val_fraction=0", "validation is carved from train"),
        ("augment.crop_scale=[0.9,0.2]", "0 < low <= high <= 1"),
        ("eval.every_n_epochs=50", "no epoch would be validated and no checkpoint chosen"),
        ("method.mixing_alpha=0", "method.mixing_alpha"),
        ("data.max_val=-1", "data.max_val"),
    ],
)
def test_cross_field_checks_fail_before_any_data_is_loaded(override, message):
    with pytest.raises(ConfigError) as info:
        load_config("simclr-digits", [override])
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("recipe", "overrides", "message"),
    [
        ("supervised-fashion-mnist", ["coded.lambda_enc=0.1"], "which coded.kind='berrut' ignores"),
        ("simclr-digits", ["coded.kind=mix", "coded.lambda_dec=0.1"], "which coded.kind='mix' ignores"),
        ("supervised-fashion-mnist", ["inference.lambda_dec=0.1"], "add inference.kind=spline"),
    ],
)
def test_a_smoothing_the_interpolant_ignores_is_refused(recipe, overrides, message):
    # Berrut and random mixing have no smoothing: a lambda sweep on them would report one run three times
    with pytest.raises(ConfigError, match=message):
        load_config(recipe, overrides)


def test_a_smoothing_is_taken_where_the_spline_uses_it():
    config = load_config("supervised-fashion-mnist", ["coded.kind=spline", "coded.lambda_enc=0.1"])
    assert config.coded.lambda_enc == 0.1
    config = load_config("simclr-digits", ["coded.lambda_dec=0.1"])  # the SSL recipes' default is the spline
    assert config.coded.lambda_dec == 0.1


def test_a_recipe_path_without_its_suffix_names_the_file_meant(tmp_path, monkeypatch):
    (tmp_path / "my-recipe.yaml").write_text("data:\n  name: digits\nmethod:\n  name: simclr\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match=re.escape("not a bundled recipe name nor a file; did you mean ./my-recipe.yaml?")
    ):
        load_config("./my-recipe")


def test_a_recipe_file_without_the_yaml_suffix_is_read(tmp_path):
    recipe = tmp_path / "my-recipe"
    recipe.write_text("data:\n  name: digits\nmethod:\n  name: byol\n")
    config = load_config(str(recipe))
    assert config.method.name == "byol" and config.name == "my-recipe"
    recipe.write_text("method: [byol\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):  # read as YAML like any recipe file
        load_config(str(recipe))
