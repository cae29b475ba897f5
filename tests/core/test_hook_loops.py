"""CodedSmoothingHook in training loops written the way lightly's, solo-learn's and Lightning's are.

Each loop trains a few steps at tiny sizes and checks what a user relies on: the penalty is positive and
finite, its gradient reaches the hooked submodule's parameters, and frozen or momentum parameters get none.
"""

import copy
import shutil
import warnings

import pytest
import torch
import torchvision
from lightly.loss import NegativeCosineSimilarity, NTXentLoss
from lightly.models import utils
from lightly.models.modules import (
    BYOLPredictionHead,
    BYOLProjectionHead,
    MAEDecoder,
    MaskedVisionTransformerTorchvision,
    SimCLRProjectionHead,
)
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import nn

from ssl_coded import CodedSmoothing, CodedSmoothingHook, attach_coded_smoothing


def tiny_backbone() -> nn.Module:
    """A small conv net in the place of lightly's `nn.Sequential(*list(resnet.children())[:-1])`."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
    )  # (B, 8, 1, 1), like the ResNet's pooled output


def penalty_gradients(penalty: torch.Tensor, module: nn.Module) -> list[torch.Tensor | None]:
    """Gradients of the penalty alone with respect to module's parameters (None where it does not reach)."""
    parameters = list(module.parameters())
    trainable = [p for p in parameters if p.requires_grad]
    if not trainable:
        return [None] * len(parameters)
    grads = iter(torch.autograd.grad(penalty, trainable, retain_graph=True, allow_unused=True))
    return [next(grads) if p.requires_grad else None for p in parameters]


def assert_penalty_trains(penalty: torch.Tensor, hooked: nn.Module, untouched: tuple[nn.Module, ...] = ()) -> None:
    assert penalty.dim() == 0 and torch.isfinite(penalty) and penalty > 0
    grads = [g for g in penalty_gradients(penalty, hooked) if g is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    for module in untouched:
        assert all(g is None or g.abs().sum() == 0 for g in penalty_gradients(penalty, module))


# --- lightly's examples (examples/pytorch/*.py), small ---------------------------------------------------------


class SimCLR(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(8, 16, 8)

    def forward(self, x):
        x = self.backbone(x).flatten(start_dim=1)
        return self.projection_head(x)


def test_lightly_simclr_loop_with_the_hook_on_the_projection_head():
    torch.manual_seed(0)
    model = SimCLR(tiny_backbone())
    criterion, optimizer = NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.06)
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule="projection_head")  # added line 1
    before = model.projection_head.layers[0].weight.detach().clone()
    for _ in range(3):
        x0, x1 = torch.rand(8, 3, 8, 8), torch.rand(8, 3, 8, 8)
        z0, z1 = model(x0), model(x1)
        penalty = hook.pop_penalty()  # added line 2
        assert_penalty_trains(penalty, model.projection_head)
        loss = criterion(z0, z1) + penalty  # added line 3
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert hook.passes == 6 and not torch.equal(model.projection_head.layers[0].weight, before)


class BYOL(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(8, 16, 8)
        self.prediction_head = BYOLPredictionHead(8, 16, 8)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x):
        y = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(y)
        return self.prediction_head(z)

    def forward_momentum(self, x):  # as in lightly's example: no no_grad, frozen weights, detached output
        y = self.backbone_momentum(x).flatten(start_dim=1)
        z = self.projection_head_momentum(y)
        return z.detach()


@pytest.mark.parametrize("submodule", ["projection_head", "prediction_head"])
def test_lightly_byol_loop_leaves_the_momentum_branch_alone(submodule):
    torch.manual_seed(0)
    model = BYOL(tiny_backbone())
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule=submodule)  # after the deepcopy
    momentum_batches = []
    model.projection_head_momentum.register_forward_hook(lambda m, args, out: momentum_batches.append(len(args[0])))
    criterion, optimizer = NegativeCosineSimilarity(), torch.optim.SGD(model.parameters(), lr=0.06)
    momentum = (model.backbone_momentum, model.projection_head_momentum)
    for _ in range(3):
        update_momentum(model.backbone, model.backbone_momentum, m=0.99)
        update_momentum(model.projection_head, model.projection_head_momentum, m=0.99)
        x0, x1 = torch.rand(8, 3, 8, 8), torch.rand(8, 3, 8, 8)
        p0, z0 = model(x0), model.forward_momentum(x0)
        p1, z1 = model(x1), model.forward_momentum(x1)
        penalty = hook.pop_penalty()
        assert_penalty_trains(penalty, model.get_submodule(submodule), untouched=momentum)
        loss = 0.5 * (criterion(p0, z1) + criterion(p1, z0)) + penalty
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert momentum_batches == [8] * 6  # the momentum head ran on the real batches only, never coded
    assert all(p.grad is None for module in momentum for p in module.parameters())


def test_a_hook_attached_before_the_momentum_deepcopy_does_not_fire_on_the_frozen_copy():
    torch.manual_seed(0)
    model = nn.Module()
    model.backbone, model.projection_head = tiny_backbone(), BYOLProjectionHead(8, 16, 8)
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule="projection_head")
    model.projection_head_momentum = copy.deepcopy(model.projection_head)  # copies the hook too
    deactivate_requires_grad(model.projection_head_momentum)
    y = model.backbone(torch.rand(8, 3, 8, 8)).flatten(start_dim=1)
    model.projection_head_momentum(y.detach())
    assert hook.passes == 0 and hook.penalties == []
    model.projection_head(y)
    assert_penalty_trains(hook.pop_penalty(), model.projection_head, untouched=(model.projection_head_momentum,))


# --- MAE: the hook on the transformer blocks (the backbone's forward never runs: the MAE calls encode) ---------


class TimmStyleBlock(nn.Module):
    """A pre-norm transformer block on (B, N, D) tokens, shaped like timm's `Block`."""

    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TimmStyleViT(nn.Module):
    """timm's VisionTransformer layout: patch_embed, cls_token, pos_embed, blocks (nn.Sequential), norm, head."""

    def __init__(self, image_size=16, patch_size=4, dim=16, depth=2, heads=2):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        self.patch_size, self.num_patches = patch_size, (image_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, self.num_patches + 1, dim))
        self.blocks = nn.Sequential(*[TimmStyleBlock(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Identity()
        self.embed_dim = dim


class TimmStyleMaskedViT(nn.Module):
    """Like lightly's MaskedVisionTransformerTIMM: the ViT under `vit`, the MAE calls `encode`."""

    def __init__(self, vit):
        super().__init__()
        self.vit = vit
        self.sequence_length = vit.num_patches + 1

    def forward(self, images):
        return self.encode(images)[:, 0]

    def encode(self, images, idx_keep=None):
        tokens = self.vit.patch_embed(images).flatten(2).transpose(1, 2)
        tokens = utils.prepend_class_token(tokens, self.vit.cls_token) + self.vit.pos_embed
        if idx_keep is not None:
            tokens = utils.get_at_index(tokens, idx_keep)
        return self.vit.norm(self.vit.blocks(tokens))


class MAE(nn.Module):
    """lightly's examples/pytorch/mae.py, with either backbone and lightly's torchvision-based decoder."""

    def __init__(self, backbone, patch_size, embed_dim, decoder_dim=16):
        super().__init__()
        self.mask_ratio, self.patch_size = 0.75, patch_size
        self.backbone = backbone
        self.sequence_length = backbone.sequence_length
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder = MAEDecoder(
            seq_length=self.sequence_length,
            num_layers=1,
            num_heads=2,
            embed_input_dim=embed_dim,
            hidden_dim=decoder_dim,
            mlp_dim=2 * decoder_dim,
            out_dim=patch_size**2 * 3,
        )

    def forward(self, images):
        batch_size = images.shape[0]
        idx_keep, idx_mask = utils.random_token_mask(
            size=(batch_size, self.sequence_length), mask_ratio=self.mask_ratio, device=images.device
        )
        x_encoded = self.backbone.encode(images=images, idx_keep=idx_keep)
        x_decode = self.decoder.embed(x_encoded)
        x_masked = utils.repeat_token(self.mask_token, (batch_size, self.sequence_length))
        x_masked = utils.set_at_index(x_masked, idx_keep, x_decode.type_as(x_masked))
        x_pred = self.decoder.predict(utils.get_at_index(self.decoder.decode(x_masked), idx_mask))
        target = utils.get_at_index(utils.patchify(images, self.patch_size), idx_mask - 1)
        return x_pred, target


def mae_torchvision():
    vit = torchvision.models.VisionTransformer(
        image_size=16, patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    return MAE(MaskedVisionTransformerTorchvision(vit=vit), patch_size=4, embed_dim=16)


def mae_timm_style():
    backbone = TimmStyleMaskedViT(TimmStyleViT())
    return MAE(backbone, patch_size=4, embed_dim=16)


def mae_lightly_timm():
    vision_transformer = pytest.importorskip("timm.models.vision_transformer")
    from lightly.models.modules.masked_vision_transformer_timm import MaskedVisionTransformerTIMM

    vit = vision_transformer.VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2)
    return MAE(MaskedVisionTransformerTIMM(vit=vit), patch_size=4, embed_dim=16)


@pytest.mark.slow  # three small ViTs with a decoder: about a second each
@pytest.mark.parametrize(
    ("build", "blocks"),
    [
        (mae_torchvision, "backbone.vit.encoder.layers"),
        (mae_timm_style, "backbone.vit.blocks"),
        (mae_lightly_timm, "backbone.vit.blocks"),
    ],
)
def test_mae_loop_with_the_hook_on_the_transformer_blocks(build, blocks):
    torch.manual_seed(0)
    model = build()
    names = [candidate.name for candidate in CodedSmoothingHook.suggest(model, torch.rand(6, 3, 16, 16))]
    assert blocks in names and "backbone" not in names  # encode() runs, the backbone's forward does not
    assert "decoder" not in names  # never called as a whole either (embed, decode, predict)
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule=blocks)
    criterion, optimizer = nn.MSELoss(), torch.optim.AdamW(model.parameters(), lr=1.5e-4)
    for _ in range(2):
        predictions, targets = model(torch.rand(8, 3, 16, 16))
        penalty = hook.pop_penalty()
        assert_penalty_trains(penalty, model.get_submodule(blocks), untouched=(model.decoder,))
        loss = criterion(predictions, targets) + penalty
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert hook.passes == 2


@pytest.mark.parametrize("submodule", ["encoder.layers", "encoder.layers.encoder_layer_1"])
def test_torchvision_vit_supervised_loop(submodule):
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=16, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=3
    )
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5, coded_ratio=3.0), submodule=submodule)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for batch_size in (8, 8, 5):  # a short last batch: other coding matrices
        logits = model(torch.rand(batch_size, 3, 16, 16))
        penalty = hook.pop_penalty()
        assert_penalty_trains(penalty, model.get_submodule(submodule))
        loss = nn.functional.cross_entropy(logits, torch.randint(0, 3, (batch_size,))) + penalty
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


# --- PyTorch Lightning: lightly's pytorch_lightning examples and a solo-learn-style method ---------------------

pl = pytest.importorskip("pytorch_lightning")


def quiet_trainer(max_steps, **kwargs):
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        **kwargs,
    )


def two_view_loader(n=24, batch_size=8):
    views = torch.rand(n, 3, 8, 8), torch.rand(n, 3, 8, 8)
    dataset = torch.utils.data.TensorDataset(*views, torch.zeros(n, dtype=torch.long))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size)


class LightningSimCLR(pl.LightningModule):
    """lightly's examples/pytorch_lightning/simclr.py with the three added lines (and a validation step)."""

    def __init__(self, attach_in="__init__"):
        super().__init__()
        self.backbone, self.projection_head = tiny_backbone(), SimCLRProjectionHead(8, 16, 8)
        self.criterion = NTXentLoss()
        self.attach_in, self.coded, self.penalties = attach_in, None, []
        if attach_in == "__init__":
            self.coded = attach_coded_smoothing(self, "projection_head", weight=0.5)

    def configure_model(self):
        if self.attach_in == "configure_model" and self.coded is None:
            self.coded = attach_coded_smoothing(self, "projection_head", weight=0.5)

    def forward(self, x):
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

    def training_step(self, batch, batch_index):
        x0, x1, _ = batch
        loss = self.criterion(self.forward(x0), self.forward(x1))
        penalty = self.coded.pop_penalty()
        assert_penalty_trains(penalty, self.projection_head)
        self.penalties.append(penalty.detach())
        return loss + penalty

    def validation_step(self, batch, batch_index):
        self.forward(batch[0])
        assert self.coded.penalties == []  # eval mode, no_grad: the branch is off

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.06)


@pytest.mark.slow
@pytest.mark.parametrize("attach_in", ["__init__", "configure_model"])
def test_lightning_simclr_with_attach_coded_smoothing(attach_in):
    torch.manual_seed(0)
    model = LightningSimCLR(attach_in)
    before = copy.deepcopy(model.projection_head.state_dict())
    trainer = quiet_trainer(3, limit_val_batches=1, num_sanity_val_steps=1, val_check_interval=2)
    trainer.fit(model, train_dataloaders=two_view_loader(), val_dataloaders=two_view_loader())
    assert len(model.penalties) == 3 and model.coded.passes == 6  # two views a step; validation never coded
    assert not torch.equal(model.projection_head.state_dict()["layers.0.weight"], before["layers.0.weight"])


class SoloLearnStyleBYOL(pl.LightningModule):
    """solo-learn's layout: `backbone`, `projector`, `predictor`, `momentum_backbone`, `momentum_projector`,
    an online `classifier` on detached features, and momentum forwards under no_grad."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(tiny_backbone(), nn.Flatten())
        self.classifier = nn.Linear(8, 3)
        self.projector = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8))
        self.predictor = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8))
        self.momentum_backbone = copy.deepcopy(self.backbone)
        self.momentum_projector = copy.deepcopy(self.projector)
        for module in (self.momentum_backbone, self.momentum_projector):
            deactivate_requires_grad(module)
        self.coded = attach_coded_smoothing(self, "projector", weight=0.5)
        self.momentum_calls, self.penalties = 0, []
        self.momentum_projector.register_forward_hook(
            lambda m, args, out: setattr(self, "momentum_calls", self.momentum_calls + 1)
        )

    def forward(self, x):
        feats = self.backbone(x)
        z = self.projector(feats)
        return {"logits": self.classifier(feats.detach()), "feats": feats, "z": z, "p": self.predictor(z)}

    @torch.no_grad()
    def momentum_forward(self, x):
        return self.momentum_projector(self.momentum_backbone(x))

    def training_step(self, batch, batch_idx):
        x1, x2, y = batch
        out1, out2 = self(x1), self(x2)
        z1_momentum, z2_momentum = self.momentum_forward(x1), self.momentum_forward(x2)
        neg_cos_sim = NegativeCosineSimilarity()
        loss = neg_cos_sim(out1["p"], z2_momentum) + neg_cos_sim(out2["p"], z1_momentum)
        class_loss = nn.functional.cross_entropy(out1["logits"], y)
        penalty = self.coded.pop_penalty()
        assert_penalty_trains(penalty, self.projector, untouched=(self.momentum_projector, self.classifier))
        self.penalties.append(penalty.detach())
        return loss + class_loss + penalty

    def on_train_batch_end(self, outputs, batch, batch_idx):
        update_momentum(self.backbone, self.momentum_backbone, m=0.99)
        update_momentum(self.projector, self.momentum_projector, m=0.99)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


@pytest.mark.slow
def test_solo_learn_style_method_with_the_hook_on_the_projector():
    torch.manual_seed(0)
    model = SoloLearnStyleBYOL()
    quiet_trainer(3).fit(model, train_dataloaders=two_view_loader())
    assert len(model.penalties) == 3 and model.coded.passes == 6
    assert model.momentum_calls == 6  # the momentum projector ran on the real batches only
    assert all(p.grad is None for p in model.momentum_projector.parameters())


# --- precision and compilation ---------------------------------------------------------------------------------


def test_bf16_autocast_penalty_is_close_to_fp32_and_trains():
    torch.manual_seed(0)
    model = SimCLR(tiny_backbone())
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule="projection_head")
    x = torch.rand(16, 3, 8, 8)
    model(x)
    fp32 = hook.pop_penalty().detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = model(x)
        penalty = hook.pop_penalty()
    assert z.dtype == torch.bfloat16
    assert_penalty_trains(penalty, model.projection_head)
    torch.testing.assert_close(penalty.float().detach(), fp32, rtol=0.1, atol=1e-4)  # bf16 keeps 8 bits
    (z.float().square().mean() + penalty).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("cc")), reason="inductor on CPU needs a C++ compiler")
@torch._functorch.config.patch(donated_buffer=False)  # the test takes the penalty's gradient alone first
def test_inductor_compiled_simclr_keeps_batchnorm_statistics_of_the_real_batches(cold_cache):
    # tests/core/test_compile.py compiles an MLP; here the hooked head has batch norm, whose running
    # statistics the coded pass must leave alone inside the compiled graph too
    torch.manual_seed(0)
    model = SimCLR(tiny_backbone())
    twin = copy.deepcopy(model)  # no hook: what the statistics must be
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule="projection_head")
    compiled = torch.compile(model, backend="inductor")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06)
    for batch_size in (16, 6):  # the last batch is short
        x0, x1 = torch.rand(batch_size, 3, 8, 8), torch.rand(batch_size, 3, 8, 8)
        twin.load_state_dict(model.state_dict())
        z0, z1 = compiled(x0), compiled(x1)
        twin(x0), twin(x1)
        for name, value in twin.projection_head.state_dict().items():
            torch.testing.assert_close(model.projection_head.state_dict()[name], value, msg=name)
        penalty = hook.pop_penalty()
        assert_penalty_trains(penalty, model.projection_head)
        (NTXentLoss()(z0, z1) + penalty).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert hook.passes == 4


@pytest.mark.slow
def test_a_hook_attached_after_the_compiled_model_ran_is_warned_about(cold_cache):
    from ssl_coded.notices import RunWarning

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    compiled = torch.compile(model, backend="aot_eager")
    compiled(torch.randn(8, 8))  # traced without the hook: Dynamo does not guard on hooks added later
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule="2")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            compiled(torch.randn(8, 8))
            hook.pop_penalty()
    if hook.passes:
        pytest.skip("this torch re-traces when a hook is added: the hook runs, nothing to warn about")
    messages = [str(w.message) for w in record if issubclass(w.category, RunWarning)]
    assert any("compile the model after attaching the hook" in message for message in messages), messages
