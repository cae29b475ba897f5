"""Training recipes (one YAML file per method and dataset), installed as `ssl_coded.recipes`."""

from importlib import resources


def available() -> list[str]:
    """Names of the bundled recipes (file names without `.yaml`)."""
    return sorted(p.name.removesuffix(".yaml") for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))
