import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_training_loop_snippet_runs_and_collects_the_penalty():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    snippet = next(block for block in blocks if "CodedSmoothingHook(" in block)
    torch.manual_seed(0)
    reference = torch.nn.Linear(64, 128)  # the snippet's first layer, before training
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(snippet, str(README), "exec"), namespace)
    hook = namespace["hook"]
    first_layer = namespace["backbone"][1]
    assert not torch.equal(first_layer.weight, reference.weight)  # it trained
    assert hook.passes == 6  # two views x three steps, each coded once
    assert hook.penalties == [] and torch.isfinite(namespace["loss"])
