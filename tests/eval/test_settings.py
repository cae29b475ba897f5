"""`EvalSettings`: checked when made, whole wherever it goes."""

import pytest
from ssl_coded.eval.protocols import PROTOCOLS
from ssl_coded.eval.settings import EvalSettings


@pytest.mark.parametrize(
    "options, message",
    [
        ({"protocols": ("knn", "fewshoot")}, r"unknown protocol\(s\) \['fewshoot'\]; choose from knn, linear"),
        ({"index_kind": "hnsw"}, "index 'hnsw' is not one of exact, flat, ivf"),
        ({"probe": "adam"}, "probe 'adam' is not one of lbfgs, sgd"),
        ({"batch_size": 0}, "--batch-size must be >= 1"),
        ({"num_workers": -1}, "--workers >= 0"),
    ],
)
def test_bad_settings_are_refused_naming_the_choices(options, message):
    with pytest.raises(ValueError, match=message):
        EvalSettings(**options)


def test_the_defaults_run_every_registered_protocol_and_record_what_changes_numbers():
    settings = EvalSettings(protocols=["knn"], probe="sgd")
    assert settings.protocols == ("knn",)  # a list from the caller becomes a tuple: settings stay frozen
    assert set(EvalSettings().protocols) == set(PROTOCOLS)
    assert settings.recorded() == {"index": "exact", "probe": "sgd"}
