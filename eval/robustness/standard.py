"""The same models under a standard implementation of the attacks: torchattacks (Kim 2020).

A verdict that rests only on attacks this project wrote could share their blind spots, so the
harness also runs, on the same images and eps:
- a deterministic model: APGD with the cross-entropy and with the DLR loss (Croce and Hein 2020,
  AutoAttack's gradient attacks) and Square (its gradient-free one, "square-ta" beside the harness's
  own "square"), with the harness's query budget;
- a randomized defence (RCI): EOT-PGD and APGD-CE with EOT, each step averaging the gradient over
  `eot_samples` draws of the defence (AutoAttack's "rand" version uses APGD with EOT too).
torchattacks draws its starts from torch's global generator and reseeds it; each attack runs inside
`torch.random.fork_rng` with a seed of its own, so a seed repeats the report and the caller's
generator is left as it was.

Example:
    >>> ok = standard_attacks(model, x, y, eps=0.05, steps=10, eot_samples=4, square_queries=500, seed=0)
    >>> ok["apgd-ce"].float().mean()  # robust accuracy under APGD-CE
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ssl_coded.extras import require

Model = Callable[[Tensor], Tensor]
DETERMINISTIC = ("apgd-ce", "apgd-dlr", "square-ta")  # "-ta": torchattacks' Square, beside the harness's own
RANDOMIZED = ("eot-pgd-ta", "apgd-eot")


class AsModule(nn.Module):
    """A callable from [0, 1] pixels to logits as the nn.Module torchattacks expects (it reads the
    device from the parameters and switches train / eval mode; the callable keeps its own mode)."""

    def __init__(self, model: Model, device: torch.device) -> None:
        super().__init__()
        self.model = model
        self.anchor = nn.Parameter(torch.empty(0, device=device), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x).float()


def standard_attacks(
    model: Model,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int,
    eot_samples: int,
    square_queries: int,
    seed: int,
    randomized: bool = False,
) -> dict[str, Tensor]:
    """{attack: per-image correctness under it} for torchattacks' attacks on one batch at one eps.

    Args:
        model: [0, 1] pixels -> logits; a randomized one draws anew on every call.
        x, y: the batch (attacked jointly, as the harness's own attacks are) and its labels.
        eps: L-inf radius; steps: iterations of the gradient attacks (EOT-PGD's step is eps / 4).
        eot_samples: draws averaged per step against a randomized model.
        square_queries: Square's query budget.
        seed: seeds every attack.
        randomized: `model` is a randomized defence: run the EOT attacks instead.
    """
    attacks = require("torchattacks", "attack")
    wrapped = AsModule(model, x.device)
    ce = {"steps": steps, "n_restarts": 1, "seed": seed}
    if randomized:  # each of its calls is a coded pass over N = (N/K) K inputs: EOT gradient attacks only
        built = {
            "eot-pgd-ta": attacks.EOTPGD(wrapped, eps=eps, alpha=eps / 4, steps=steps, eot_iter=eot_samples),
            "apgd-eot": attacks.APGD(wrapped, norm="Linf", eps=eps, loss="ce", eot_iter=eot_samples, **ce),
        }
    else:
        built = {"apgd-ce": attacks.APGD(wrapped, norm="Linf", eps=eps, loss="ce", **ce)}
        with torch.no_grad():
            classes = model(x[:1]).shape[1]
        if classes >= 3:  # the DLR loss compares the true logit with the top two others
            built["apgd-dlr"] = attacks.APGD(wrapped, norm="Linf", eps=eps, loss="dlr", **ce)
        built |= {
            "square-ta": attacks.Square(
                wrapped, norm="Linf", eps=eps, n_queries=square_queries, n_restarts=1, seed=seed
            ),
        }
    correct = {}
    for i, (name, attack) in enumerate(built.items()):
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed + i)
            x_adv = attack(x, y)
            with torch.no_grad():
                correct[name] = model(x_adv).argmax(1) == y
    return correct
