"""`EvalSettings`: checked when made, whole wherever it goes."""

import pytest
from ssl_coded.eval.protocols import ANCHORS, PROTOCOLS
from ssl_coded.eval.settings import EvalSettings


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"protocols": ("knn", "fewshoot")},
            r"unknown protocol\(s\) \['fewshoot'\]; choose from knn, linear, knn-sweep, fewshot",
        ),
        ({"index_kind": "hnsw"}, "index 'hnsw' is not one of exact, flat, ivf"),
        ({"probe": "adam"}, "probe 'adam' is not one of lbfgs, sgd"),
        ({"batch_size": 0}, "--batch-size must be >= 1"),
        ({"num_workers": -1}, "--workers >= 0"),
        ({"knn_ks": (0, 20)}, "needs --knn-k values >= 1"),
        ({"knn_temperatures": ()}, "--knn-t values > 0"),
        ({"fewshot_fractions": (0.01, 2)}, r"fractions of the labels in \(0, 1\]"),
        ({"fewshot_draws": 0}, "--draws must be >= 1"),
    ],
)
def test_bad_settings_are_refused_naming_the_choices(options, message):
    with pytest.raises(ValueError, match=message):
        EvalSettings(**options)


def test_the_defaults_run_the_anchor_protocols_and_record_what_changes_numbers():
    settings = EvalSettings(protocols=["knn"], probe="sgd")
    assert settings.protocols == ("knn",)  # a list from the caller becomes a tuple: settings stay frozen
    assert EvalSettings().protocols == ANCHORS == ("knn", "linear") and set(ANCHORS) < set(PROTOCOLS)
    assert settings.recorded() == {"index": "exact", "probe": "sgd"}
    assert settings.recorded("knn-sweep")["ks"] == [10, 20, 100, 200]
    assert settings.recorded("fewshot") | {"draws": 0} == {
        "index": "exact",
        "probe": "sgd",
        "fractions": [0.01, 0.1],
        "draws": 0,
    }
