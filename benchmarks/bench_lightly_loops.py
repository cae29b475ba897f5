"""What one coded-smoothing weight means inside lightly's own example loops (`examples/pytorch/*.py`): the
models, losses and optimisers as lightly writes them, on its backbone (torchvision's ResNet-18 without its
classifier; MAE on a small torchvision ViT), batch 16 at 32 px, with the hook added by the lines the README
shows: `CodedSmoothingHook(model, CodedSmoothing(weight), submodule=...)` and, in the loss,
`hook.regularize(loss, floor)` (loss-relative), `hook.regularize(loss, relative_to="gradient")`
(gradient-relative) or `+ hook.pop_penalty()` (absolute).

Per method, seed and weighting, the loop trains 50 steps on two augmented views of digits (upsampled to
32 px, RGB; DINO and SwAV add six 16 px local crops and code the two global ones, `calls=range(2)`); at
steps 1 and 50 it measures penalty / (loss - floor) and the ratio of the penalty's and the loss's gradient
norms on the hooked submodule's parameters, and times the other steps (the median step, in seconds: what a
weighting costs beside the others, measured in the same process). The table gives medians over the seeds
and the spread across methods (largest over smallest). MoCo v3 has no lightly example: its loop is the
paper's Algorithm 1 on lightly's heads.

`--cost` times only what the gradient-relative weight costs: the same loop taking turns between the two
weightings, step by step.

Run: OMP_NUM_THREADS=1 python -m benchmarks.bench_lightly_loops [--seeds 3] [--steps 50] [--out-dir DIR] [--cost]
(one thread: two runs side by side, or a machine with other work, oversubscribe the cores otherwise)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from lightly.loss import (
    BarlowTwinsLoss,
    DINOLoss,
    NegativeCosineSimilarity,
    NTXentLoss,
    SwaVLoss,
    VICRegLoss,
)
from lightly.models import utils
from lightly.models.modules import (
    BarlowTwinsProjectionHead,
    BYOLPredictionHead,
    BYOLProjectionHead,
    DINOProjectionHead,
    MAEDecoder,
    MaskedVisionTransformerTorchvision,
    MoCoProjectionHead,
    SimCLRProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
    SwaVProjectionHead,
    SwaVPrototypes,
)
from lightly.models.modules.heads import VICRegProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from sklearn.datasets import load_digits
from torch import Tensor, nn

from benchmarks.bench_weight_scale import medians, spread_rows, write_report
from ssl_coded import CodedSmoothing, CodedSmoothingHook
from ssl_coded.loss_floors import NEGATIVE_COSINE_FLOOR, dino_loss_floor
from ssl_coded.tables import markdown_table

MOMENTUM = 0.996  # lightly's cosine_schedule(epoch 0, ..., 0.996, 1): the first epoch's value


def resnet18_backbone() -> nn.Module:
    resnet = torchvision.models.resnet18()
    return nn.Sequential(*list(resnet.children())[:-1])  # as every lightly example: (B, 512, 1, 1)


def momentum_copy(module: nn.Module) -> nn.Module:
    twin = copy.deepcopy(module)
    deactivate_requires_grad(twin)
    return twin


@dataclass
class Loop:
    """One lightly example: its model, the submodule the README hooks, its optimiser, and its step: the
    loss on a list of views (two global crops first) and the lowest value that loss can take."""

    model: nn.Module
    submodule: str
    step: Callable[[list[Tensor]], tuple[Tensor, float | Tensor]]
    optimizer: torch.optim.Optimizer
    local_crops: int = 0
    after_backward: Callable[[], None] = lambda: None
    calls: range | None = None


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.06)


def adam(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=0.001)


class Encoder(nn.Module):
    """lightly's `backbone(x).flatten(start_dim=1)` then a projection head."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.backbone = resnet18_backbone()
        self.projection_head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


def simclr() -> Loop:
    model, criterion = Encoder(SimCLRProjectionHead(512, 512, 128)), NTXentLoss()
    return Loop(model, "projection_head", lambda v: (criterion(model(v[0]), model(v[1])), 0.0), sgd(model))


def vicreg() -> Loop:
    model, criterion = Encoder(VICRegProjectionHead(512, 2048, 2048, num_layers=2)), VICRegLoss()
    return Loop(model, "projection_head", lambda v: (criterion(model(v[0]), model(v[1])), 0.0), sgd(model))


def barlowtwins() -> Loop:
    model, criterion = Encoder(BarlowTwinsProjectionHead(512, 2048, 2048)), BarlowTwinsLoss()
    return Loop(model, "projection_head", lambda v: (criterion(model(v[0]), model(v[1])), 0.0), sgd(model))


def moco() -> Loop:
    model = Encoder(MoCoProjectionHead(512, 512, 128))
    model.backbone_momentum = momentum_copy(model.backbone)
    model.projection_head_momentum = momentum_copy(model.projection_head)
    criterion = NTXentLoss(memory_bank_size=(4096, 128))

    def loss(views: list[Tensor]) -> tuple[Tensor, float]:
        update_momentum(model.backbone, model.backbone_momentum, m=MOMENTUM)
        update_momentum(model.projection_head, model.projection_head_momentum, m=MOMENTUM)
        key = model.projection_head_momentum(model.backbone_momentum(views[1]).flatten(start_dim=1)).detach()
        return criterion(model(views[0]), key), 0.0

    return Loop(model, "projection_head", loss, sgd(model))


class Predicting(Encoder):
    """BYOL's and SimSiam's online branch: projection, then prediction head."""

    def __init__(self, projection: nn.Module, prediction: nn.Module):
        super().__init__(projection)
        self.prediction_head = prediction

    def project(self, x: Tensor) -> Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


def byol() -> Loop:
    model = Predicting(BYOLProjectionHead(512, 1024, 256), BYOLPredictionHead(256, 1024, 256))
    model.backbone_momentum = momentum_copy(model.backbone)
    model.projection_head_momentum = momentum_copy(model.projection_head)
    criterion = NegativeCosineSimilarity()

    def target(x: Tensor) -> Tensor:
        return model.projection_head_momentum(model.backbone_momentum(x).flatten(start_dim=1)).detach()

    def loss(views: list[Tensor]) -> tuple[Tensor, float]:
        update_momentum(model.backbone, model.backbone_momentum, m=MOMENTUM)
        update_momentum(model.projection_head, model.projection_head_momentum, m=MOMENTUM)
        p0, p1 = (model.prediction_head(model.project(v)) for v in views[:2])
        return 0.5 * (criterion(p0, target(views[1])) + criterion(p1, target(views[0]))), NEGATIVE_COSINE_FLOOR

    return Loop(model, "projection_head", loss, sgd(model))


def simsiam() -> Loop:
    model = Predicting(SimSiamProjectionHead(512, 512, 128), SimSiamPredictionHead(128, 64, 128))
    criterion = NegativeCosineSimilarity()

    def loss(views: list[Tensor]) -> tuple[Tensor, float]:
        z0, z1 = (model.project(v) for v in views[:2])
        p0, p1 = model.prediction_head(z0), model.prediction_head(z1)
        return 0.5 * (criterion(z0.detach(), p1) + criterion(z1.detach(), p0)), NEGATIVE_COSINE_FLOOR

    return Loop(model, "projection_head", loss, sgd(model))


def mocov3() -> Loop:
    """The paper's Algorithm 1 (lightly has no MoCo v3 example) on lightly's heads, ResNet-18 as for MoCo v2."""
    model = Predicting(MoCoProjectionHead(512, 4096, 256, batch_norm=True), BYOLPredictionHead(256, 4096, 256))
    model.backbone_momentum = momentum_copy(model.backbone)
    model.projection_head_momentum = momentum_copy(model.projection_head)

    def contrastive(query: Tensor, key: Tensor, temperature: float = 1.0) -> Tensor:
        logits = F.normalize(query, dim=1) @ F.normalize(key, dim=1).T / temperature
        return F.cross_entropy(logits, torch.arange(len(query))) * 2 * temperature

    def loss(views: list[Tensor]) -> tuple[Tensor, float]:
        update_momentum(model.backbone, model.backbone_momentum, m=MOMENTUM)
        update_momentum(model.projection_head, model.projection_head_momentum, m=MOMENTUM)
        q0, q1 = (model.prediction_head(model.project(v)) for v in views[:2])
        with torch.no_grad():
            k0, k1 = (model.projection_head_momentum(model.backbone_momentum(v).flatten(1)) for v in views[:2])
        return contrastive(q0, k1) + contrastive(q1, k0), 0.0

    return Loop(model, "projection_head", loss, sgd(model))


def dino() -> Loop:
    model = nn.Module()
    model.student_backbone = resnet18_backbone()
    model.student_head = DINOProjectionHead(512, 512, 64, 2048, freeze_last_layer=1)
    model.teacher_backbone = momentum_copy(model.student_backbone)
    model.teacher_head = DINOProjectionHead(512, 512, 64, 2048)  # weight-normed: built, not deep-copied
    deactivate_requires_grad(model.teacher_head)
    criterion = DINOLoss(output_dim=2048, warmup_teacher_temp_epochs=5)

    def student(x: Tensor) -> Tensor:
        return model.student_head(model.student_backbone(x).flatten(start_dim=1))

    def loss(views: list[Tensor]) -> tuple[Tensor, Tensor]:
        update_momentum(model.student_backbone, model.teacher_backbone, m=MOMENTUM)
        update_momentum(model.student_head, model.teacher_head, m=MOMENTUM)
        teacher = [model.teacher_head(model.teacher_backbone(v).flatten(start_dim=1)) for v in views[:2]]
        floor = dino_loss_floor(criterion, teacher, epoch=0)  # before the loss moves the centre
        return criterion(teacher, [student(v) for v in views], epoch=0), floor

    def cancel() -> None:
        model.student_head.cancel_last_layer_gradients(current_epoch=0)

    return Loop(model, "student_head", loss, adam(model), local_crops=6, after_backward=cancel, calls=range(2))


def swav() -> Loop:
    model = Encoder(SwaVProjectionHead(512, 512, 128))
    model.prototypes = SwaVPrototypes(128, n_prototypes=512)
    criterion = SwaVLoss()

    def scores(x: Tensor) -> Tensor:
        return model.prototypes(F.normalize(model(x), dim=1, p=2))

    def loss(views: list[Tensor]) -> tuple[Tensor, float]:
        model.prototypes.normalize()
        features = [scores(v) for v in views]
        return criterion(features[:2], features[2:]), 0.0

    return Loop(model, "projection_head", loss, adam(model), local_crops=6, calls=range(2))


def mae() -> Loop:
    """lightly's MAE example on a small torchvision ViT (32 px, 4 px patches) in place of ViT-B/32 at 224."""
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=4, num_layers=6, num_heads=3, hidden_dim=192, mlp_dim=768
    )
    model = nn.Module()
    model.backbone = MaskedVisionTransformerTorchvision(vit=vit)
    length = model.backbone.sequence_length
    model.mask_token = nn.Parameter(torch.zeros(1, 1, 128))
    model.decoder = MAEDecoder(
        seq_length=length, num_layers=1, num_heads=4, embed_input_dim=192, hidden_dim=128, mlp_dim=512, out_dim=48
    )

    def loss(views: list[Tensor]) -> tuple[Tensor, float]:
        images = views[0]
        idx_keep, idx_mask = utils.random_token_mask(size=(len(images), length), mask_ratio=0.75)
        encoded = model.backbone.encode(images=images, idx_keep=idx_keep)
        masked = utils.repeat_token(model.mask_token, (len(images), length))
        masked = utils.set_at_index(masked, idx_keep, model.decoder.embed(encoded).type_as(masked))
        prediction = model.decoder.predict(utils.get_at_index(model.decoder.decode(masked), idx_mask))
        target = utils.get_at_index(utils.patchify(images, 4), idx_mask - 1)
        return F.mse_loss(prediction, target), 0.0

    return Loop(model, "backbone.vit.encoder.layers", loss, torch.optim.AdamW(model.parameters(), lr=1.5e-4))


LOOPS: dict[str, Callable[[], Loop]] = {
    "simclr": simclr,
    "byol": byol,
    "mae": mae,
    "moco": moco,
    "mocov3": mocov3,
    "vicreg": vicreg,
    "barlowtwins": barlowtwins,
    "simsiam": simsiam,
    "dino": dino,
    "swav": swav,
}


def digits_rgb32() -> Tensor:
    """scikit-learn's digits, (1797, 3, 32, 32) in [0, 1]: CIFAR-10's size and channels, offline."""
    images = torch.from_numpy(load_digits().images).float().div(16).unsqueeze(1)
    return F.interpolate(images, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)


def crops(images: Tensor, size: int, scale: tuple[float, float], generator: torch.Generator) -> Tensor:
    """One random resized crop (square, of `scale` of the area) and horizontal flip per image."""
    out = []
    for image in images:
        side = int(32 * float(torch.empty(1).uniform_(*scale, generator=generator)) ** 0.5)
        top, left = (int(torch.randint(0, 33 - side, (1,), generator=generator)) for _ in range(2))
        crop = image[:, top : top + side, left : left + side].unsqueeze(0)
        crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False)[0]
        out.append(crop.flip(-1) if torch.rand(1, generator=generator) < 0.5 else crop)
    return torch.stack(out)


def views(images: Tensor, local_crops: int, generator: torch.Generator) -> list[Tensor]:
    global_views = [crops(images, 32, (0.2, 1.0), generator) for _ in range(2)]
    return global_views + [crops(images, 16, (0.05, 0.2), generator) for _ in range(local_crops)]


def gradient_norm(value: Tensor, parameters: list[nn.Parameter]) -> float:
    grads = torch.autograd.grad(value, parameters, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def measure(
    name: str, seed: int, steps: int = 50, weighting: str = "loss", weight: float = 0.03, batch: int = 16
) -> dict[int, dict[str, float]]:
    """{step: {"loss", "penalty", "value_ratio", "grad_ratio", "step_seconds"}} at step 1 and the last step
    (step_seconds: the median of the other steps, the same in both)."""
    torch.manual_seed(seed)
    loop = LOOPS[name]()
    hook = CodedSmoothingHook(loop.model, CodedSmoothing(weight=weight), submodule=loop.submodule, calls=loop.calls)
    hooked = [p for p in hook.module.parameters() if p.requires_grad]
    data, generator = digits_rgb32(), torch.Generator().manual_seed(seed)
    out, seconds = {}, []
    for step in range(1, steps + 1):
        images = data[torch.randperm(len(data), generator=generator)[:batch]]
        batch_views = views(images, loop.local_crops, generator)
        start = time.perf_counter()
        loss, floor = loop.step(batch_views)
        if weighting in ("loss", "gradient"):
            total = hook.regularize(loss, floor=floor, relative_to=weighting)
            penalty = total - loss
        else:
            penalty = hook.pop_penalty()
            total = loss + penalty
        if step in (1, steps):
            out[step] = {
                "loss": float(loss.detach()),
                "penalty": float(penalty.detach()),
                "value_ratio": float(penalty.detach()) / max(abs(float(loss.detach()) - float(floor)), 1e-12),
                "grad_ratio": gradient_norm(penalty, hooked) / max(gradient_norm(loss, hooked), 1e-12),
            }
        loop.optimizer.zero_grad()
        total.backward()
        loop.after_backward()
        loop.optimizer.step()
        if step not in (1, steps):  # the measured steps differentiate twice more
            seconds.append(time.perf_counter() - start)
    hook.remove()
    for figures in out.values():
        figures["step_seconds"] = statistics.median(seconds) if seconds else float("nan")
    return out


def cost(name: str, steps: int = 20, seed: int = 0, batch: int = 16) -> float:
    """The gradient-relative step's time over the loss-relative one's, in one loop taking turns (ABAB: a
    load that drifts during the run slows both alike): the median of the per-pair ratios."""
    torch.manual_seed(seed)
    loop = LOOPS[name]()
    hook = CodedSmoothingHook(loop.model, CodedSmoothing(weight=0.03), submodule=loop.submodule, calls=loop.calls)
    data, generator = digits_rgb32(), torch.Generator().manual_seed(seed)
    ratios, times = [], {}
    for step in range(2 * steps + 2):  # the first pair warms up
        relative_to = ("loss", "gradient")[step % 2]
        images = data[torch.randperm(len(data), generator=generator)[:batch]]
        batch_views = views(images, loop.local_crops, generator)
        start = time.perf_counter()
        loss, floor = loop.step(batch_views)
        total = hook.regularize(loss, floor=floor, relative_to=relative_to)
        loop.optimizer.zero_grad()
        total.backward()
        loop.after_backward()
        loop.optimizer.step()
        times[relative_to] = time.perf_counter() - start
        if relative_to == "gradient" and step > 1:
            ratios.append(times["gradient"] / times["loss"])
    hook.remove()
    return statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--weight", type=float, default=0.03, help="the loss-relative weight")
    parser.add_argument("--gradient-weight", type=float, default=0.05, help="the gradient-relative weight")
    parser.add_argument("--absolute-weight", type=float, default=0.5, help="the weight taken as is")
    parser.add_argument("--out-dir", type=Path, default=Path("bench-lightly-loops"))
    parser.add_argument("--methods", nargs="*", default=list(LOOPS))
    parser.add_argument("--cost", action="store_true", help="only time the gradient-relative step against the other")
    args = parser.parse_args(argv)
    if args.cost:
        ratios = {name: cost(name) for name in args.methods}
        rows = [[name, f"`{LOOPS[name]().submodule}`", f"{ratio:.2f}"] for name, ratio in ratios.items()]
        print(markdown_table(["method", "hooked", "step time, gradient- / loss-relative (median of 20 pairs)"], rows))
        return 0
    results: dict[str, dict] = {}
    weights = {"loss": args.weight, "gradient": args.gradient_weight, "absolute": args.absolute_weight}
    for weighting, weight in weights.items():
        for name in args.methods:
            runs = [measure(name, seed, args.steps, weighting, weight) for seed in range(args.seeds)]
            results.setdefault(weighting, {})[name] = medians(runs)
            print(f"{weighting:8s} {name:12s} {results[weighting][name]}", flush=True)
    rows = []
    for weighting, by_method in results.items():
        for name, r in by_method.items():
            cells = [f"{r[s]['value_ratio']:.2g} / {r[s]['grad_ratio']:.2g}" for s in ("1", str(args.steps))]
            slower = r["1"]["step_seconds"] / results["loss"][name]["1"]["step_seconds"]
            hooked = f"`{LOOPS[name]().submodule}`"
            rows.append([weighting, name, hooked, f"{r['1']['loss']:.3g}", *cells, f"{slower:.2f}"])
    header = ["weighting", "method", "hooked", "loss at step 1", "step 1: value / gradient ratio", "last step"]
    header.append("step time / loss-relative's")
    table = markdown_table(header, rows)
    write_report(args.out_dir, "bench-lightly-loops", results, table, spread_rows(results, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
