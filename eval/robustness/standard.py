"""The same models under a standard implementation of the attacks: torchattacks (Kim 2020).

A verdict that rests only on attacks this project wrote could share their blind spots, so the
harness also runs, on the same images and eps:
- a deterministic model: APGD with the cross-entropy and with the DLR loss (Croce and Hein 2020,
  AutoAttack's gradient attacks) and Square (its gradient-free one, "square-ta" beside the harness's
  own "square"), with the harness's query budget;
- a randomized defence (RCI): the same attacks, the gradient ones in their EOT form (each step averages
  the gradient over `eot_samples` draws of the defence; AutoAttack's "rand" version uses APGD with
  EOT too): EOT-PGD, APGD-CE and APGD-DLR with EOT, and Square. The two sides of RCI's verdict thus
  face the same attacks.
torchattacks draws its starts from torch's generators and reseeds them; each attack runs inside
`torch.random.fork_rng` with a seed of its own, so a seed repeats the report and the caller's
generators are left as they were.

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
# every name standard_attacks may return ("-ta": torchattacks' own, beside the harness's attack of that name)
STANDARD = ("apgd-ce", "apgd-dlr", "eot-pgd-ta", "apgd-eot", "apgd-dlr-eot", "square-ta")


class AsModule(nn.Module):
    """A callable from [0, 1] pixels to logits as the nn.Module torchattacks expects (it reads the
    device from the parameters and switches train / eval mode; the callable keeps its own mode)."""

    def __init__(self, model: Model, device: torch.device) -> None:
        super().__init__()
        # not registered as a submodule: torchattacks' train() / eval() calls must not reach a model that is
        # an nn.Module itself (a probe on an encoder with batch norm would leave eval mode)
        object.__setattr__(self, "model", model)
        self.anchor = nn.Parameter(torch.empty(0, device=device), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x).float()


def highest_loss(apgd) -> Callable[[Tensor, Tensor], Tensor]:
    """APGD returning each image's highest-loss point (`best_loss`) instead of the image itself where
    its final check was not fooled: against a randomized model that check is one draw."""
    return lambda images, labels: apgd.perturb(images, labels, best_loss=True)[1]


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
        randomized: `model` is a randomized defence: the gradient attacks in their EOT form.
    """
    attacks = require("torchattacks", "attack")
    wrapped = AsModule(model, x.device)
    with torch.no_grad(), torch.random.fork_rng():  # a randomized model draws even here
        dlr = model(x[:1]).shape[1] >= 3  # the DLR loss compares the true logit with the top two others
    gradient = ["apgd-eot", "apgd-dlr-eot", "eot-pgd-ta"] if randomized else ["apgd-ce", "apgd-dlr"]
    names = [n for n in gradient if dlr or "dlr" not in n] + ["square-ta"]

    def build(name: str, seed: int) -> Callable[[Tensor, Tensor], Tensor]:
        """One attack; APGD and Square reseed torch from their own `seed`."""
        if name == "square-ta":
            return attacks.Square(wrapped, norm="Linf", eps=eps, n_queries=square_queries, n_restarts=1, seed=seed)
        if name == "eot-pgd-ta":
            return attacks.EOTPGD(wrapped, eps=eps, alpha=eps / 4, steps=steps, eot_iter=eot_samples)
        loss = "dlr" if "dlr" in name else "ce"
        eot = eot_samples if randomized else 1
        apgd = attacks.APGD(
            wrapped, norm="Linf", eps=eps, steps=steps, n_restarts=1, seed=seed, loss=loss, eot_iter=eot
        )
        return highest_loss(apgd) if randomized else apgd

    correct = {}
    for i, name in enumerate(names):  # each attack its own seed
        with torch.random.fork_rng():  # every device's generator: the caller's draws are left as they were
            torch.manual_seed(seed + i)
            x_adv = build(name, seed + i)(x, y)
            with torch.no_grad():
                correct[name] = model(x_adv).argmax(1) == y
    return correct
