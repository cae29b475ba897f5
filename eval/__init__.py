"""Evaluation harnesses, installed as `ssl_coded.eval` (never as a bare `eval`): features and their
cache, kNN and retrieval, the linear probe, reports and plots; `robustness/` holds the attacks, the
attack harness with randomized coded inference, and the decoding-fidelity sweep.

Needs the `eval` extra (`pip install 'ssl-coded[eval]'`). It asks for encoders as callables and data
as datasets; it never imports `ssl_coded.training`.

Example:
    >>> from ssl_coded.eval import evaluate, knn, linear_probe, retrieval
    >>> rows = evaluate(model, train_set, test_set, device="auto")  # any nn.Module, any datasets
    >>> knn(train_x, train_y, test_x, test_y)["knn_dino_top1"]  # or on features you already have
"""

from ssl_coded.extras import check_same_tree, require_installed

check_same_tree(__file__, "ssl_coded.eval")
require_installed(("sklearn", "scipy", "matplotlib", "tqdm", "torchvision"), "eval")

from ssl_coded.eval.encoders import build_encoder, load_weights  # noqa: E402
from ssl_coded.eval.features import FeatureSource, encoder_source, resolve_device  # noqa: E402
from ssl_coded.eval.preprocess import Preprocess, normalisation  # noqa: E402
from ssl_coded.eval.protocols import ProbeResult, knn, linear_probe, retrieval  # noqa: E402
from ssl_coded.eval.report import evaluate, evaluate_sources, raw_pixels  # noqa: E402

__all__ = [
    "FeatureSource",
    "Preprocess",
    "ProbeResult",
    "build_encoder",
    "encoder_source",
    "evaluate",
    "evaluate_sources",
    "knn",
    "linear_probe",
    "load_weights",
    "normalisation",
    "raw_pixels",
    "resolve_device",
    "retrieval",
]
