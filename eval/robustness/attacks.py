"""L-inf evasion attacks on classifiers of [0, 1] images: FGSM, PGD with EOT, and a Square-style search.

`model` is any callable from images (n, C, H, W) in [0, 1] to logits. For a randomized defence
(randomized coded inference) each call draws new randomness, so
- `pgd(..., eot_samples=S)` is EOT-PGD: every step follows the gradient of the loss averaged over S
  calls (S independent draws of the defence), the adaptive attack a randomized model must face;
- `square_attack` only queries outputs: a gradient-free check that gradients are not masked.
Every attack returns adversarial images inside the eps ball around x and inside [0, 1].
A defence that codes a batch couples its items, so the whole batch is attacked jointly (the
attacker perturbs all of it), as it is when test images are served together.

Example:
    >>> x_adv = pgd(model, images, labels, eps=0.1, steps=10)
    >>> robust_accuracy = (model(x_adv).argmax(1) == labels).float().mean()
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Model = Callable[[Tensor], Tensor]


def project(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """The nearest point inside both the eps ball around x and the valid pixel range."""
    return torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)


def loss_gradient(model: Model, x: Tensor, y: Tensor, samples: int = 1) -> Tensor:
    """Gradient of the summed cross-entropy, averaged over `samples` calls of the model."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = sum(F.cross_entropy(model(x).float(), y, reduction="sum") for _ in range(samples)) / samples
        (gradient,) = torch.autograd.grad(loss, x)
    return gradient


def fgsm(model: Model, x: Tensor, y: Tensor, eps: float) -> Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size eps."""
    return project(x + eps * loss_gradient(model, x, y).sign(), x, eps).detach()


def pgd(
    model: Model,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    eot_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient descent (Madry et al. 2018), L-inf, on the loss averaged over `eot_samples` calls.

    Args:
        step_size: default eps / 4.
        random_start: start from a uniform point of the eps ball.
        eot_samples: S, calls of the model averaged per step (expectation over transformation).
        generator: for the random start.
    """
    if steps < 1 or eot_samples < 1:
        raise ValueError(f"steps and eot_samples must be >= 1, got {steps} and {eot_samples}")
    step_size = eps / 4 if step_size is None else step_size
    x_adv = x.detach().clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device)
        x_adv = project(x_adv + eps * (2 * noise.to(x.device) - 1), x, eps)
    for _ in range(steps):
        gradient = loss_gradient(model, x_adv, y, eot_samples)
        x_adv = project(x_adv + step_size * gradient.sign(), x, eps).detach()
    return x_adv


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """logit of the true class minus the largest other logit: negative = misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return true - other


@torch.no_grad()
def square_attack(
    model: Model,
    x: Tensor,
    y: Tensor,
    eps: float,
    queries: int = 200,
    p_init: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A Square-style random search (Andriushchenko et al. 2020), L-inf, from output margins only.

    Starts from vertical stripes of +-eps; each query redraws one random square per image (+-eps
    per channel) whose side shrinks over the queries, and keeps it where the margin falls.
    Images already misclassified stop changing. Against a randomized model each query is one draw,
    so the search is noisier there than against a deterministic one.
    """
    generator = generator or torch.Generator().manual_seed(0)
    n, channels, height, width = x.shape

    def draw(*shape: int) -> Tensor:
        return torch.rand(shape, generator=generator, device=generator.device).to(x.device)

    signs = torch.where(draw(n, channels, 1, width) < 0.5, -1.0, 1.0)
    x_best = project(x + eps * signs, x, eps)
    best = margin(model(x_best).float(), y)
    for query in range(queries):
        active = best > 0
        if not active.any():
            break
        fraction = p_init * 0.5 ** math.floor(8 * query / max(queries, 1))  # halves every queries/8
        side = max(1, min(height, width, round(math.sqrt(fraction * height * width))))
        window = _square_mask(draw(n), draw(n), side, height, width)
        patch = torch.where(draw(n, channels, 1, 1) < 0.5, -eps, eps)
        candidate = project(torch.where(window, x + patch, x_best), x, eps)
        score = margin(model(candidate).float(), y)
        better = active & (score < best)
        x_best[better], best[better] = candidate[better], score[better]
    return x_best


def _square_mask(u_top: Tensor, u_left: Tensor, side: int, height: int, width: int) -> Tensor:
    """(n, 1, H, W) masks of one side x side square per image, at positions drawn from u in [0, 1)."""
    top = (u_top * (height - side + 1)).long()[:, None]
    left = (u_left * (width - side + 1)).long()[:, None]
    rows, cols = torch.arange(height, device=top.device)[None], torch.arange(width, device=top.device)[None]
    inside_rows = (rows >= top) & (rows < top + side)
    inside_cols = (cols >= left) & (cols < left + side)
    return (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]
