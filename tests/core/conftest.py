import pytest
import torch

from ssl_coded import coding


@pytest.fixture
def cold_cache():
    """No coding matrices cached and no compiled graphs: a first forward as in a fresh process."""
    coding._TORCH_CACHE.clear()
    coding.coding_matrices_float64.cache_clear()
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
