"""Each method against lightly's own example loop (`examples/pytorch/<method>.py` in lightly's repository;
MoCo v3, which lightly has no example of, against the paper's Algorithm 1):
the example's model and loss written out here from lightly's parts, started from the same weights, fed the
same batch (augmentation off, so both views are the batch), stepped by the same SGD. The losses of the
first steps agree: the method composes lightly's heads, loss, momentum update and memory bank as the
example does."""

from __future__ import annotations

import copy

import pytest
import torch
from lightly.loss import BarlowTwinsLoss, DINOLoss, NegativeCosineSimilarity, NTXentLoss, SwaVLoss, VICRegLoss
from lightly.models.modules import (
    BarlowTwinsProjectionHead,
    DINOProjectionHead,
    MoCoProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
    SwaVProjectionHead,
    SwaVPrototypes,
)
from lightly.models.modules.heads import VICRegProjectionHead
from lightly.models.modules.memory_bank import MemoryBankModule
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import nn

from ssl_coded.data import load_splits
from ssl_coded.training.methods import build_method
from ssl_coded.training.recipes import load_config

STEPS, LR = 3, 0.06  # lightly's examples: SGD, lr 0.06


def method_and_batch(name: str):
    config = load_config(f"{name}-digits", ["augment.enabled=false", "data.max_train=64", "data.max_test=32"])
    splits = load_splits(config.data)
    torch.manual_seed(0)
    method = build_method(config, splits)
    return method, method.to_input(splits.train.images[:32])


def same_weights(module: nn.Module, like: nn.Module) -> nn.Module:
    module.load_state_dict(like.state_dict())
    return module


class MoCoExample(nn.Module):  # examples/pytorch/moco.py
    def __init__(self, backbone, m):
        super().__init__()
        self.backbone = backbone
        self.projection_head = MoCoProjectionHead(backbone.out_dim, m.hidden_dim, m.projection_dim)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x):
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

    def forward_momentum(self, x):
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()


def moco_example(method):
    m = method.config.method
    model = MoCoExample(backbone_of(method), m)
    model.projection_head.load_state_dict(method.projection_head.state_dict())
    model.projection_head_momentum.load_state_dict(method.projection_head_momentum.state_dict())
    model.backbone_momentum.load_state_dict(method.backbone_momentum.state_dict())
    criterion = NTXentLoss(temperature=m.temperature, memory_bank_size=(m.memory_bank_size, m.projection_dim))
    for name in ("bank", "bank_ptr"):  # the queue starts random; lightly keeps it out of the state_dict
        getattr(criterion.memory_bank, name).copy_(getattr(method.criterion.memory_bank, name))

    def loss(x):
        update_momentum(model.backbone, model.backbone_momentum, m=m.momentum_start)
        update_momentum(model.projection_head, model.projection_head_momentum, m=m.momentum_start)
        return criterion(model(x), model.forward_momentum(x))

    return model, loss


def two_view_example(head, criterion):
    """vicreg.py and barlowtwins.py: z0, z1 = model(x0), model(x1); loss = criterion(z0, z1)."""

    def build(method):
        model = nn.Sequential(
            backbone_of(method), nn.Flatten(start_dim=1), same_weights(head(method), method.projection_head)
        )
        return model, lambda x: criterion(method)(model(x), model(x))

    return build


def simsiam_example(method):  # examples/pytorch/simsiam.py
    m = method.config.method
    backbone = backbone_of(method)
    projection = same_weights(
        SimSiamProjectionHead(backbone.out_dim, m.hidden_dim, m.projection_dim), method.projection_head
    )
    prediction = same_weights(
        SimSiamPredictionHead(m.projection_dim, m.prediction_hidden_dim, m.projection_dim), method.prediction_head
    )
    model = nn.ModuleList([backbone, projection, prediction])
    criterion = NegativeCosineSimilarity()

    def forward(x):
        z = projection(backbone(x).flatten(start_dim=1))
        return z.detach(), prediction(z)

    def loss(x):
        (z0, p0), (z1, p1) = forward(x), forward(x)
        return 0.5 * (criterion(z0, p1) + criterion(z1, p0))

    return model, loss


def backbone_of(method) -> nn.Module:
    backbone = copy.deepcopy(method.backbone)
    backbone.out_dim = method.feature_dim
    return backbone


class DINOExample(nn.Module):  # examples/pytorch/dino.py
    def __init__(self, backbone, m):
        super().__init__()
        head = (backbone.out_dim, m.hidden_dim, m.bottleneck_dim, m.output_dim)
        self.student_backbone = backbone
        self.student_head = DINOProjectionHead(*head, freeze_last_layer=m.freeze_last_layer)
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = DINOProjectionHead(*head)
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)

    def forward(self, x):
        return self.student_head(self.student_backbone(x).flatten(start_dim=1))

    def forward_teacher(self, x):
        return self.teacher_head(self.teacher_backbone(x).flatten(start_dim=1))


def dino_example(method):
    m = method.config.method
    model = DINOExample(backbone_of(method), m)
    for mine, theirs in (("student_head", "student_head"), ("teacher_backbone", "teacher_backbone"),
                         ("teacher_head", "teacher_head")):  # fmt: skip
        getattr(model, theirs).load_state_dict(getattr(method, mine).state_dict())
    criterion = DINOLoss(output_dim=m.output_dim, warmup_teacher_temp_epochs=m.warmup_teacher_temperature_epochs)

    def loss(x):
        update_momentum(model.student_backbone, model.teacher_backbone, m=m.momentum_start)
        update_momentum(model.student_head, model.teacher_head, m=m.momentum_start)
        views = [x, x]  # the global crops (augmentation off); no local crops
        teacher_out = [model.forward_teacher(view) for view in views[:2]]
        student_out = [model.forward(view) for view in views]
        return criterion(teacher_out, student_out, epoch=0)

    def after_backward():
        model.student_head.cancel_last_layer_gradients(current_epoch=0)

    return model, loss, after_backward


class SwaVExample(nn.Module):  # examples/pytorch/swav.py
    def __init__(self, backbone, m):
        super().__init__()
        self.backbone = backbone
        self.projection_head = SwaVProjectionHead(backbone.out_dim, m.hidden_dim, m.projection_dim)
        self.prototypes = SwaVPrototypes(m.projection_dim, n_prototypes=m.prototypes)

    def forward(self, x):
        x = self.projection_head(self.backbone(x).flatten(start_dim=1))
        return self.prototypes(nn.functional.normalize(x, dim=1, p=2))


def swav_example(method):
    m = method.config.method
    model = SwaVExample(backbone_of(method), m)
    model.projection_head.load_state_dict(method.projection_head.state_dict())
    model.prototypes.load_state_dict(method.prototypes.state_dict())
    criterion = SwaVLoss()

    def loss(x):
        model.prototypes.normalize()
        multi_crop_features = [model(view) for view in (x, x)]  # two global crops, no local ones
        return criterion(multi_crop_features[:2], multi_crop_features[2:])

    return model, loss


def mocov3_example(method):
    """MoCo v3's Algorithm 1 (arXiv 2104.02057): q = f_q(x), k = f_k(x) under no gradient, the loss
    ctr(q1, k2) + ctr(q2, k1) with ctr = 2 tau x CrossEntropy(q k^T / tau, range(N)) on unit vectors,
    f_k = m f_k + (1 - m) f_q; written out here from torch alone."""
    m = method.config.method
    f_q = nn.Sequential(backbone_of(method), nn.Flatten(start_dim=1), copy.deepcopy(method.projection_head),
                        copy.deepcopy(method.prediction_head))  # fmt: skip
    f_k = nn.Sequential(copy.deepcopy(method.backbone_momentum), nn.Flatten(start_dim=1),
                        copy.deepcopy(method.projection_head_momentum))  # fmt: skip

    def ctr(q, k):
        logits = nn.functional.normalize(q, dim=1) @ nn.functional.normalize(k, dim=1).T
        return 2 * m.temperature * nn.functional.cross_entropy(logits / m.temperature, torch.arange(len(q)))

    def loss(x):
        with torch.no_grad():
            for online, momentum in zip(f_q[:3].parameters(), f_k.parameters(), strict=True):
                momentum.mul_(m.momentum_start).add_((1 - m.momentum_start) * online)
            k1, k2 = f_k(x), f_k(x)
        return ctr(f_q(x), k2) + ctr(f_q(x), k1)

    return f_q, loss


EXAMPLES = {
    "moco": moco_example,
    "mocov3": mocov3_example,
    "vicreg": two_view_example(
        lambda md: VICRegProjectionHead(md.feature_dim, md.config.method.hidden_dim, md.config.method.projection_dim,
                                        num_layers=md.config.method.projection_layers),
        lambda md: VICRegLoss(),
    ),
    "barlowtwins": two_view_example(
        lambda md: BarlowTwinsProjectionHead(
            md.feature_dim, md.config.method.hidden_dim, md.config.method.projection_dim
        ),
        lambda md: BarlowTwinsLoss(lambda_param=md.config.method.lambda_param),
    ),
    "simsiam": simsiam_example,
    "dino": dino_example,
    "swav": swav_example,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_first_steps_give_the_losses_of_lightlys_example_loop(name):
    method, x = method_and_batch(name)
    example, example_loss, *after = EXAMPLES[name](method)
    ours = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=LR)
    theirs = torch.optim.SGD([p for p in example.parameters() if p.requires_grad], lr=LR)
    for step in range(STEPS):
        loss, _ = method.ssl_step(x)
        reference = example_loss(x)
        torch.testing.assert_close(loss, reference, msg=lambda text, step=step: f"step {step + 1}: {text}")
        for optimizer, value, after_backward in ((ours, loss, method.on_after_backward),
                                                 (theirs, reference, after[0] if after else lambda: None)):  # fmt: skip
            optimizer.zero_grad()
            value.backward()
            after_backward()  # DINO: the head's last layer frozen in the first epoch, as lightly's loop does
            optimizer.step()


class SwaVQueueExample(nn.Module):  # examples/pytorch/swav_queue.py: the queue from the first step, prototypes unfrozen
    def __init__(self, method):
        super().__init__()
        m = method.config.method
        self.backbone = backbone_of(method)
        self.projection_head = same_weights(
            SwaVProjectionHead(method.feature_dim, m.hidden_dim, m.projection_dim), method.projection_head
        )
        self.prototypes = same_weights(SwaVPrototypes(m.projection_dim, m.prototypes), method.prototypes)
        self.queues = nn.ModuleList([MemoryBankModule(size=(m.queue_length, m.projection_dim)) for _ in range(2)])
        for queue, theirs in zip(self.queues, method.queues, strict=True):  # the queues start random
            queue.bank.copy_(theirs.bank)

    def forward(self, high_resolution, epoch=0):
        self.prototypes.normalize()
        features = [self._subforward(x) for x in high_resolution]
        high = [self.prototypes(x, epoch) for x in features]
        with torch.no_grad():
            queued = [q(f, update=True)[1].permute(1, 0) for q, f in zip(self.queues, features, strict=True)]
            return high, [], [self.prototypes(x, epoch) for x in queued]

    def _subforward(self, x):
        return nn.functional.normalize(self.projection_head(self.backbone(x).flatten(start_dim=1)), dim=1, p=2)


def test_swavs_queue_gives_the_losses_of_lightlys_queue_example_and_travels_in_the_checkpoint():
    config = load_config("swav-digits", ["augment.enabled=false", "data.max_train=64", "data.max_test=32",
                                         "method.queue_length=64", "method.queue_start_epoch=0"])  # fmt: skip
    splits = load_splits(config.data)
    torch.manual_seed(0)
    method = build_method(config, splits)
    x = method.to_input(splits.train.images[:32])
    example, criterion = SwaVQueueExample(method), SwaVLoss()
    ours = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=LR)
    theirs = torch.optim.SGD([p for p in example.parameters() if p.requires_grad], lr=LR)
    for step in range(STEPS):  # from step 3 on the codes see a queue of two earlier batches
        loss, _ = method.ssl_step(x)
        reference = criterion(*example([x, x]))
        torch.testing.assert_close(loss, reference, msg=lambda text, step=step: f"step {step + 1}: {text}")
        for optimizer, value in ((ours, loss), (theirs, reference)):
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
    checkpoint: dict = {}
    method.on_save_checkpoint(checkpoint)
    torch.manual_seed(1)
    fresh = build_method(config, splits)
    fresh.on_load_checkpoint(checkpoint)
    for restored, queue in zip(fresh.queues, method.queues, strict=True):
        assert torch.equal(restored.bank, queue.bank) and int(restored.bank_ptr) == int(queue.bank_ptr) == 32 * 3 % 64


def test_mocos_queue_travels_in_the_checkpoint():
    method, x = method_and_batch("moco")
    method.ssl_step(x)  # enqueues one batch of keys
    checkpoint: dict = {}
    method.on_save_checkpoint(checkpoint)
    fresh, _ = method_and_batch("moco")
    fresh.on_load_checkpoint(checkpoint)
    bank, restored = method.criterion.memory_bank, fresh.criterion.memory_bank
    assert torch.equal(restored.bank, bank.bank) and int(restored.bank_ptr) == int(bank.bank_ptr) == 32


def test_dinos_student_sees_local_crops_at_their_own_size_and_the_teacher_global_ones_only():
    config = load_config("dino-digits", ["method.num_local_crops=3", "method.local_crop_size=4", "data.max_train=64"])
    torch.manual_seed(0)
    method = build_method(config, load_splits(config.data))
    sizes = {"student": [], "teacher": []}
    method.backbone.register_forward_hook(lambda m, args, out: sizes["student"].append(args[0].shape[-1]))
    method.teacher_backbone.register_forward_hook(lambda m, args, out: sizes["teacher"].append(args[0].shape[-1]))
    images = load_splits(config.data).train.images[:16]
    loss, _ = method.ssl_step(method.to_input(images))
    assert sizes == {"student": [8, 8, 4, 4, 4], "teacher": [8, 8]} and torch.isfinite(loss)
