import math

import torch
import torch.nn.functional as F

from ssl_coded.training.methods.mocov3.model import mocov3_loss


def test_mocov3_loss_is_the_papers_scaled_cross_entropy_of_a_loop():
    torch.manual_seed(0)
    query, key, temperature = torch.randn(5, 3), torch.randn(5, 3), 0.4
    total = 0.0
    for i in range(5):
        scores = [F.cosine_similarity(query[i], key[j], dim=0).item() / temperature for j in range(5)]
        total += math.log(sum(math.exp(s) for s in scores)) - scores[i]
    assert math.isclose(mocov3_loss(query, key, temperature).item(), 2 * temperature * total / 5, rel_tol=1e-5)
