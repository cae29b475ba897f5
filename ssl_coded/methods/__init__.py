"""Registry of methods: name -> LightningModule class."""

from ssl_coded.methods.base import SSLMethod
from ssl_coded.methods.byol import BYOL
from ssl_coded.methods.mae import MAE
from ssl_coded.methods.simclr import SimCLR
from ssl_coded.methods.supervised import Supervised

METHODS: dict[str, type[SSLMethod]] = {"simclr": SimCLR, "byol": BYOL, "mae": MAE, "supervised": Supervised}


def get_method(name: str) -> type[SSLMethod]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


__all__ = ["BYOL", "MAE", "METHODS", "SSLMethod", "SimCLR", "Supervised", "get_method"]
