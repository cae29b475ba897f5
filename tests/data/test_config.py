"""The data section parsed from `key=value` (`ssl-coded eval --dataset`) and checked in the data layer."""

import math

import pytest

from ssl_coded.data import DataConfig, check_data, parse_data_overrides
from ssl_coded.errors import ConfigError


def test_values_take_the_type_of_their_field():
    config = parse_data_overrides(["name=imagefolder", "root=/data/x", "max_test=100", "val_fraction=0.25"])
    config2 = parse_data_overrides(["skip_unreadable=True", "download=false", "stream=TRUE"])
    assert config == DataConfig(name="imagefolder", root="/data/x", max_test=100, val_fraction=0.25)
    assert (config.max_test, type(config.max_test), type(config.val_fraction)) == (100, int, float)
    assert config2.skip_unreadable is True and config2.download is False and config2.stream == "true"
    assert parse_data_overrides([]) == DataConfig()


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["bogus=1"], "data.bogus is not a key of the data section; valid keys: data.name, data.root"),
        (["max_test"], "is not key=value"),
        (["max_test=ten"], "data.max_test='ten' must be an integer"),
        (["val_fraction=a"], "data.val_fraction='a' must be a number"),
        (["download=yes"], "data.download='yes' must be true or false"),
        (["stream=sometimes"], "data.stream='sometimes' must be auto, true or false"),
    ],
)
def test_a_bad_item_is_one_line_naming_its_key(items, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        parse_data_overrides(items)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (DataConfig(name="imagenet"), "data.name='imagenet' is not one of digits, fashion-mnist"),
        (DataConfig(max_train=-5), "data.max_train=-5 must be >= 0"),
        (DataConfig(memory_budget_mb=0), "data.memory_budget_mb=0 must be >= 1"),
        (DataConfig(val_fraction=math.nan), "data.val_fraction=nan must be in (0, 1)"),
        (DataConfig(val_fraction=1.0), "data.val_fraction=1.0 must be in (0, 1)"),
        (DataConfig(split_seed=-1), "data.split_seed=-1 must be in [0, 2**32 - 1]"),
    ],
)
def test_check_data_names_the_key_and_its_range(config, message):
    with pytest.raises(ConfigError) as error:
        check_data(config)
    assert str(error.value).startswith(message)


def test_the_defaults_pass():
    check_data(DataConfig())
