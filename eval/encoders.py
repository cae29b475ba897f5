"""Encoders trained elsewhere: weights from other libraries' checkpoints, for the models that
`ssl_coded.models` builds by name (`torchvision:NAME`, `timm:NAME`, `module.path:callable`; re-exported here).

`load_weights` reads a state_dict, or a checkpoint that holds one (Lightning's and solo-learn's
`state_dict`), with `weights_only=True`. The encoder's keys may sit under a prefix (`backbone.`,
`model.backbone.`) and, as in lightly's examples, the backbone may be an `nn.Sequential` of the
model's children (`backbone.4.0.conv1.weight` for resnet's `layer1.0.conv1.weight`); both are found
where exactly one prefix holds every weight of the encoder, otherwise the error lists the candidates.

Example:
    >>> encoder = build_encoder("torchvision:resnet18")
    >>> load_weights(encoder, "simclr.pt")  # e.g. {"backbone.0.weight": ..., "projection_head...": ...}
    {'prefix': 'backbone.', 'layout': 'children'}
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ssl_coded.models.zoo import KINDS, EncoderError, build_encoder, classifier_name, input_channels, quiet_warnings

__all__ = ["KINDS", "EncoderError", "build_encoder", "classifier_name", "input_channels", "load_weights"]

CHECKPOINT_KEYS = ("state_dict", "model")  # where Lightning/solo-learn and timm/DINO-style files keep their weights
SHOWN = 5  # keys named in an error line


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file: a state_dict, or a checkpoint holding one under `state_dict`/`model`."""
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"weights file {path} does not exist")
    try:
        with quiet_warnings():  # torch's notice about pickle protocols: the refusal below says enough
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle with code in it, a truncated file, not a torch file at all
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EncoderError(
            f"{path} cannot be read as tensors with torch.load(weights_only=True) ({first}); "
            "save the encoder with torch.save(model.state_dict(), path)"
        ) from error
    for key in CHECKPOINT_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict):
        raise EncoderError(f"{path} holds a {type(loaded).__name__}, not a state_dict of tensors")
    return {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, Tensor)}


def layouts(model: nn.Module) -> dict[str, dict[str, str]]:
    """The names the model's weights may carry in another file -> the model's own name, per layout:
    `named` (the model's own names) and `children` (an nn.Sequential of the model's children, as
    lightly's examples build backbones: child i's weights under `i.`)."""
    own = list(model.state_dict())
    index = {name: str(i) for i, (name, _) in enumerate(model.named_children())}
    children = {}
    for key in own:
        first, _, rest = key.partition(".")
        if first in index and rest:
            children[f"{index[first]}.{rest}"] = key
    out = {"named": {key: key for key in own}}
    if len(children) == len(own):
        out["children"] = children
    return out


def find_prefixes(keys: set[str], names: dict[str, str]) -> list[str]:
    """Every prefix under which `keys` hold all of `names`, best (shortest) first."""
    first = next(iter(names))
    candidates = {key[: -len(first)] for key in keys if key == first or key.endswith("." + first)}
    covering = [p for p in candidates if all(p + name in keys for name in names)]
    return sorted(covering, key=lambda p: (len(p), p))


def load_weights(model: nn.Module, path: str | Path, prefix: str | None = None) -> dict[str, str]:
    """Load a weights file into an encoder, finding the prefix and layout of its keys.

    Args:
        model: the encoder (e.g. from `build_encoder`).
        path: a state_dict or a checkpoint holding one (`torch.load(weights_only=True)`).
        prefix: the prefix of the encoder's keys in the file (`""` for none); found automatically
            when None and exactly one prefix holds all of them.

    Returns:
        {"prefix": the prefix used, "layout": "named" or "children"}.

    Raises:
        EncoderError: no prefix or several hold the encoder's weights, or with the prefix given some
            weights are missing, left over or of another shape (listed, one line).
    """
    state = read_state_dict(path)
    keys = set(state)
    options = layouts(model)
    if prefix is None:
        found = [(p, layout) for layout, names in options.items() for p in find_prefixes(keys, names)]
        if not found:
            raise EncoderError(_nothing_fits(path, model, state, options))
        if len({p for p, _ in found}) > 1:
            listed = ", ".join(repr(p) for p, _ in found[:SHOWN])
            raise EncoderError(
                f"{path} holds the encoder's weights under several prefixes ({listed}); choose one with --prefix"
            )
        prefix, layout = found[0]
    else:
        layout = max(options, key=lambda name: sum(prefix + key in keys for key in options[name]))
    names = options[layout]
    selected = {
        names.get(key[len(prefix) :], key[len(prefix) :]): v for key, v in state.items() if key.startswith(prefix)
    }
    head = getattr(model, "removed_classifier", None)
    if head:  # the classifier that build_encoder replaced: its weights are expected in the file, and unused
        selected = {k: v for k, v in selected.items() if not k.startswith(head + ".")}
    missing = [k for k in model.state_dict() if k not in selected]
    unexpected = [k for k in selected if k not in model.state_dict()]
    if missing or unexpected:
        raise EncoderError(
            f"{path} under prefix {prefix!r} does not fit the encoder: "
            f"{_listed('missing', missing)}{'; ' if missing and unexpected else ''}{_listed('unexpected', unexpected)}"
            "; check the encoder name or pass another --prefix"
        )
    try:
        model.load_state_dict(selected)
    except RuntimeError as error:  # shapes: another model width or depth
        detail = " ".join(line.strip() for line in str(error).splitlines()[1:3])
        raise EncoderError(f"{path} under prefix {prefix!r} has weights of other shapes: {detail}") from error
    return {"prefix": prefix, "layout": layout}


def _listed(what: str, keys: list[str]) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return f"{len(keys)} {what} ({', '.join(keys[:SHOWN])}{more})"


def _nothing_fits(path: str | Path, model: nn.Module, state: dict[str, Tensor], options: dict) -> str:
    """The error when no prefix holds every weight: the closest prefix and what it lacks."""
    best: tuple[int, str, list[str]] = (0, "", list(model.state_dict()))
    for names in options.values():
        prefixes = {key[: len(key) - len(n)] for n in names for key in state if key == n or key.endswith("." + n)}
        for prefix in prefixes:
            lacking = [own for other, own in names.items() if prefix + other not in state]
            if len(names) - len(lacking) > best[0]:
                best = (len(names) - len(lacking), prefix, lacking)
    matched, prefix, lacking = best
    if not matched:
        sample = ", ".join(sorted(state)[:SHOWN])
        return (
            f"{path} holds none of the encoder's weights (its keys: {sample}, ...); "
            "check the encoder name, or pass --prefix"
        )
    return (
        f"{path} holds {matched} of the encoder's {matched + len(lacking)} weights under prefix {prefix!r}; "
        f"{_listed('missing', lacking)}; check the encoder name, or pass --prefix"
    )
