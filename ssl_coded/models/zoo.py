"""Models by name: torchvision's and timm's, and user code, without their classifiers; what evaluation
encodes with and what pretraining can start from.

- `torchvision:NAME`: any torchvision classification model, built without pretrained weights; its
  last linear layer (the classifier) becomes the identity, so the features are its pooled
  penultimate layer (resnet18: 512, vit_b_16: 768).
- `timm:NAME`: a timm model with `num_classes=0` (its pooled features); needs timm installed.
- `module.path:callable`: user code; the callable takes no arguments and returns an `nn.Module`.

Example:
    >>> encoder = build_encoder("torchvision:resnet18")
    >>> feature_dim(encoder, channels=3, image_size=32)
    512
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
from typing import Any

import torch
from torch import nn

from ssl_coded.extras import require

KINDS = ("torchvision", "timm")


class EncoderError(ValueError):
    """An encoder spec or weights file that cannot be used; the message names the fix."""


def build_encoder(spec: str, seed: int | None = 0) -> nn.Module:
    """The encoder a spec names, at the random initialisation of `seed`, in eval mode.

    Args:
        spec: `torchvision:NAME`, `timm:NAME` or `module.path:callable`.
        seed: seeds the initialisation, leaving the global RNG as it was; None draws from the global
            RNG (pretraining, whose recipe seeds it).

    Raises:
        EncoderError: a malformed spec, an unknown model, or user code that does not return a module.
    """
    kind, _, name = spec.partition(":")
    if not kind or not name:
        raise EncoderError(f"encoder {spec!r} is not torchvision:NAME, timm:NAME or module.path:callable")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        if kind == "torchvision":
            model = _torchvision(name)
        elif kind == "timm":
            model = _timm(name)
        else:
            model = _user_code(kind, name)
    return model.eval()


def _torchvision(name: str) -> nn.Module:
    from torchvision import models

    known = models.list_models(module=models)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see torchvision.models.list_models()"
        raise EncoderError(f"torchvision has no classification model {name!r}{hint}")
    with quiet_warnings():  # e.g. inception's init-weights notice
        model = models.get_model(name, weights=None)
    head = classifier_name(model)
    if head is None:
        raise EncoderError(
            f"torchvision:{name} has no final linear classifier to remove; wrap it in your own code "
            "and pass module.path:callable"
        )
    parent, _, child = head.rpartition(".")
    setattr(model.get_submodule(parent), child, nn.Identity())
    model.removed_classifier = head  # type: ignore[assignment]  # its keys in other files are ignored
    return model


def classifier_name(model: nn.Module) -> str | None:
    """The dotted name of the model's last linear layer (torchvision's classifiers: `fc`, `heads.head`,
    `classifier.3`); None if it has none."""
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return linear[-1] if linear else None


def _timm(name: str) -> nn.Module:
    timm = require("timm", "timm")
    try:
        return timm.create_model(name, pretrained=False, num_classes=0)
    except RuntimeError as error:  # timm: "Unknown model (...)"
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
        raise EncoderError(f"timm has no model {name!r}{hint}") from error


def _user_code(module_name: str, attribute: str) -> nn.Module:
    spec = f"{module_name}:{attribute}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise EncoderError(
            f"encoder {spec!r}: cannot import {module_name!r} ({error}); put its folder on PYTHONPATH, "
            "or use torchvision:NAME or timm:NAME"
        ) from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise EncoderError(f"encoder {spec!r}: {module_name} has no callable {attribute!r}")
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise EncoderError(f"encoder {spec!r} needs arguments; give a callable that takes none") from None
    except ValueError:  # no signature to read (some builtins): try the call
        pass
    model = factory()
    if not isinstance(model, nn.Module):
        raise EncoderError(f"encoder {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


@contextlib.contextmanager
def quiet_warnings() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def input_channels(model: nn.Module) -> int | None:
    """The channels the model's first convolution takes (None: it has none, e.g. an MLP)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Conv1d | nn.Conv3d):
            return int(module.in_channels)
    return None


def feature_dim(model: nn.Module, channels: int, image_size: int, name: str = "the backbone") -> int:
    """The size of the features `model` gives for (channels, image_size, image_size) images, from a dry
    run of two zero images in eval mode (no statistics move); the model is left in the mode it was in.

    Raises:
        EncoderError: the model does not run on such images, or does not return (n, d) features.
    """
    was_training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(2, channels, image_size, image_size))
    except Exception as error:  # a ViT with a fixed image size, a model that needs 3 channels, ...
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EncoderError(
            f"{name} does not run on {channels}x{image_size}x{image_size} images ({first}); "
            "pick one that takes that size (a ViT is built for one image size) or change the data's size"
        ) from error
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise EncoderError(f"{name} returns {shape} for a batch, not (n, d) features; give one that pools")
    return int(out.shape[1])
