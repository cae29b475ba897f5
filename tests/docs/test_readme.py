"""The README's code runs: every snippet of "Add it to your training loop" is executed here.

Snippets are found by their first line, `# snippet: NAME`, so that reordering or adding blocks
cannot make a test run the wrong one.
"""

import contextlib
import functools
import io
import re
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from ssl_coded import CodedSmoothingHook, attach_coded_smoothing

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Add it to your training loop"


def section() -> str:
    text = README.read_text()
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def snippet(name: str) -> str:
    found = re.findall(rf"```python\n# snippet: {re.escape(name)}\n(.*?)```", section(), flags=re.S)
    assert len(found) == 1, f"README section {SECTION!r} needs exactly one python block tagged '# snippet: {name}'"
    return found[0]


def run(name: str, namespace: dict) -> dict:
    exec(compile(snippet(name), f"{README}:{name}", "exec"), namespace)
    return namespace


def plain_loop() -> dict:
    torch.manual_seed(0)
    return run("plain-loop", {})


def test_every_python_block_of_the_section_is_tagged():
    blocks = re.findall(r"```python\n(.*?)```", section(), flags=re.S)
    names = [re.match(r"# snippet: (\S+)\n", block) for block in blocks]
    assert all(names), "an untagged python block in the section would go untested"
    tested = {"plain-loop", "suggest", "lightly-example", "lightning", "solo-learn", "compile", "regularizer"}
    assert {m.group(1) for m in names} == tested | {"coded-inference"}  # each has its test below


def test_readme_training_loop_snippet_runs_and_collects_the_penalty():
    torch.manual_seed(0)
    reference = torch.nn.Linear(64, 128)  # the snippet's first layer, before training
    namespace = plain_loop()
    hook = namespace["hook"]
    first_layer = namespace["backbone"][1]
    assert not torch.equal(first_layer.weight, reference.weight)  # it trained
    assert hook.passes == 6  # two views x three steps, each coded once
    assert hook.penalties == [] and torch.isfinite(namespace["loss"])


def test_suggest_snippet_prints_the_output_shown():
    namespace = plain_loop()
    namespace["hook"].remove()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run("suggest", namespace)
    shown = re.search(r"# snippet: suggest\n.*?```\n\n```text\n(.*?)```", section(), flags=re.S)
    assert shown, "the suggest snippet is followed by a text block with its output"
    assert printed.getvalue() == shown.group(1)


def test_lightly_example_snippet_adds_the_penalty_to_the_examples_loop():
    from lightly.loss import NTXentLoss

    from tests.core.test_hook_loops import SimCLR, tiny_backbone

    torch.manual_seed(0)
    model = SimCLR(tiny_backbone())
    views = [(torch.rand(8, 3, 8, 8), torch.rand(8, 3, 8, 8)) for _ in range(3)]
    dataloader = [(pair, torch.zeros(8), [""] * 8) for pair in views]  # lightly's (views, labels, names)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06)
    before = model.projection_head.layers[0].weight.detach().clone()
    namespace = run(
        "lightly-example", {"model": model, "dataloader": dataloader, "criterion": NTXentLoss(), "optimizer": optimizer}
    )
    assert namespace["hook"].passes == 6 and namespace["hook"].penalties == []
    assert not torch.equal(model.projection_head.layers[0].weight, before)


@pytest.mark.slow
def test_lightning_snippet_trains_with_the_penalty():
    pl = pytest.importorskip("pytorch_lightning")
    namespace = run("lightning", plain_loop())
    torch.manual_seed(0)
    model = namespace["SimCLR"]()
    views = torch.rand(16, 1, 8, 8), torch.rand(16, 1, 8, 8)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*views, torch.zeros(16)),
        batch_size=8,
        collate_fn=lambda rows: ((torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])), None),
    )
    trainer = pl.Trainer(
        max_steps=2,
        accelerator="cpu",
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    before = model.projection_head.layers[0].weight.detach().clone()
    trainer.fit(model, train_dataloaders=loader)
    assert model.coded.passes == 4 and model.coded.penalties == []
    assert not torch.equal(model.projection_head.layers[0].weight, before)


class SoloLearnStyleBYOL(nn.Module):
    """A stand-in for solo.methods.BYOL: `projector`, a frozen `momentum_projector` run under no_grad, and a
    training_step that returns the loss (solo-learn is not a dependency)."""

    def __init__(self, cfg):
        super().__init__()
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(16, 8))
        self.projector = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))
        self.momentum_projector = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))
        self.momentum_projector.requires_grad_(False)

    def training_step(self, batch, batch_idx):
        _, (x1, x2), _ = batch  # solo-learn's [indexes, [X], Y]
        z1, z2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))
        with torch.no_grad():
            m1, m2 = self.momentum_projector(self.backbone(x1)), self.momentum_projector(self.backbone(x2))
        return -(nn.functional.cosine_similarity(z1, m2).mean() + nn.functional.cosine_similarity(z2, m1).mean())


def test_solo_learn_snippet_adds_the_penalty_to_training_step():
    torch.manual_seed(0)
    namespace = run("solo-learn", {"BYOL": SoloLearnStyleBYOL, "attach_coded_smoothing": attach_coded_smoothing})
    model = namespace["CodedBYOL"](cfg=None)
    batch = (torch.arange(8), (torch.rand(8, 1, 4, 4), torch.rand(8, 1, 4, 4)), torch.zeros(8))
    loss = model.training_step(batch, 0)
    assert model.coded.passes == 2 and model.coded.penalties == []  # two crops; the momentum forwards are not coded
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.projector.parameters())
    assert all(p.grad is None for p in model.momentum_projector.parameters())


@pytest.mark.slow
def test_compile_snippet_trains_with_a_short_last_batch(monkeypatch):
    namespace = plain_loop()
    namespace["hook"].remove()  # the snippet attaches its own
    torch._dynamo.reset()
    # aot_eager: the same graph capture as inductor without the C++ build (tests/core covers inductor)
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    try:
        run("compile", namespace)
    finally:
        torch._dynamo.reset()
    assert namespace["hook"].passes == 6 and torch.isfinite(namespace["loss"])


def test_regularizer_snippet_scores_the_head_and_the_supervised_reading():
    from lightly.loss import NTXentLoss

    from ssl_coded import CodedSmoothing
    from tests.core.test_hook_loops import SimCLR, tiny_backbone

    torch.manual_seed(0)
    model, x0, x1 = SimCLR(tiny_backbone()), torch.rand(8, 3, 8, 8), torch.rand(8, 3, 8, 8)
    h0 = model.backbone(x0).flatten(start_dim=1)
    z0, z1 = model.projection_head(h0), model(x1)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    namespace = {"CodedSmoothing": CodedSmoothing, "criterion": NTXentLoss(), "model": model, "h0": h0, "z0": z0}
    namespace |= {"z1": z1, "F": nn.functional, "classifier": classifier, "images": x0, "y": torch.randint(0, 5, (8,))}
    run("regularizer", namespace)
    assert torch.isfinite(namespace["loss"]) and namespace["loss"].requires_grad
    plain = nn.functional.cross_entropy(classifier(x0), namespace["y"])
    assert namespace["loss"] > plain  # the coded term is added, positive


def test_coded_inference_snippet_predicts_one_row_per_image():
    torch.manual_seed(0)
    model, images = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), torch.rand(8, 3, 2, 2)
    namespace = run("coded-inference", {"model": model, "images": images})
    assert namespace["logits"].shape == (8, 3) and torch.isfinite(namespace["logits"]).all()


# --- the table of submodule names, checked against the real classes ---------------------------------------------


def table_names() -> list[str]:
    rows = re.search(r"\| model \| `submodule` \|\n\|---\|---\|\n(.*?)\n\n", section(), flags=re.S)
    assert rows, "the section's table of submodules"
    return [name for row in rows.group(1).splitlines() for name in re.findall(r"`([^`]+)`", row.split("|")[2])]


def lightly_examples_resnet():
    from lightly.models.modules import SimCLRProjectionHead

    from tests.core.test_hook_loops import SimCLR

    resnet = small_resnet()
    model = SimCLR(nn.Sequential(*list(resnet.children())[:-1]))  # as in lightly's examples
    model.projection_head = SimCLRProjectionHead(512, 16, 8)
    assert model.backbone[7] is resnet.layer4
    return model, torch.rand(6, 3, 32, 32)


def tiny_torchvision_vit():
    vit = torchvision.models.VisionTransformer(
        image_size=16, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    return vit, torch.rand(6, 3, 16, 16)


def needs(module):
    pytest.importorskip(module)
    raise AssertionError(f"{module} is installed: build its model here")


def lightly_loops(name):
    from tests.core import test_hook_loops as loops

    return {
        "projection_head": lambda: (loops.SimCLR(loops.tiny_backbone()), torch.rand(6, 3, 8, 8)),
        "prediction_head": lambda: (loops.BYOL(loops.tiny_backbone()), torch.rand(6, 3, 8, 8)),
        "backbone.vit.encoder.layers": lambda: (loops.mae_torchvision(), torch.rand(6, 3, 16, 16)),
        "backbone.vit.blocks": lambda: (loops.mae_lightly_timm(), torch.rand(6, 3, 16, 16)),
    }[name]()


def lightly_dino():
    """lightly's DINO example (`examples/pytorch/dino.py`): student and teacher heads, the teacher frozen."""
    import copy

    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import deactivate_requires_grad

    from tests.core.test_hook_loops import tiny_backbone

    class DINO(nn.Module):
        def __init__(self):
            super().__init__()
            self.student_backbone = tiny_backbone()
            self.student_head = DINOProjectionHead(8, 16, 8, 32, freeze_last_layer=1)
            self.teacher_backbone = copy.deepcopy(self.student_backbone)
            self.teacher_head = DINOProjectionHead(8, 16, 8, 32)
            deactivate_requires_grad(self.teacher_backbone)
            deactivate_requires_grad(self.teacher_head)

        def forward(self, x):
            return self.student_head(self.student_backbone(x).flatten(start_dim=1))

    return DINO(), torch.rand(6, 3, 8, 8)


def timm_vit():
    vision_transformer = pytest.importorskip("timm.models.vision_transformer")
    return vision_transformer.VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2)


@functools.cache
def small_resnet():
    # torchvision's ResNet class with one block per stage: resnet18's names, half its weights to build
    return torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=4)


BUILDERS = {
    "projection_head": functools.partial(lightly_loops, "projection_head"),
    "prediction_head": functools.partial(lightly_loops, "prediction_head"),
    "student_head": lightly_dino,
    "backbone.7": lightly_examples_resnet,
    "backbone.vit.encoder.layers": functools.partial(lightly_loops, "backbone.vit.encoder.layers"),
    "backbone.vit.blocks": functools.partial(lightly_loops, "backbone.vit.blocks"),
    "encoder.layers": tiny_torchvision_vit,
    "heads": tiny_torchvision_vit,
    "layer4": lambda: (small_resnet(), torch.rand(6, 3, 32, 32)),
    "fc": lambda: (small_resnet(), torch.rand(6, 3, 32, 32)),
    "blocks": lambda: (timm_vit(), torch.rand(6, 3, 16, 16)),
    "projector": functools.partial(needs, "solo"),
    "predictor": functools.partial(needs, "solo"),
}


def test_the_table_names_only_models_this_file_checks():
    assert sorted(table_names()) == sorted(BUILDERS)


@pytest.mark.parametrize("name", table_names())
def test_every_submodule_in_the_table_exists_and_takes_a_batch(name):
    model, batch = BUILDERS[name]()
    model.train()
    assert name in [candidate.name for candidate in CodedSmoothingHook.suggest(model, batch)]
