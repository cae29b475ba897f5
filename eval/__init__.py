"""Evaluation harnesses, installed as `ssl_coded.eval` (never as a bare `eval`): features and their
cache, kNN and retrieval, the linear probe, reports and plots; `robustness/` holds the attacks, the
attack harness with randomized coded inference, and the decoding-fidelity sweep.

Needs the `eval` extra (`pip install 'ssl-coded[eval]'`). It asks for encoders as callables and data
as datasets; it never imports `ssl_coded.training`.
"""

from ssl_coded.extras import check_same_tree, require_installed

check_same_tree(__file__, "ssl_coded.eval")
require_installed(("sklearn", "scipy", "matplotlib", "tqdm"), "eval")
