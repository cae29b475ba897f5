"""Training recipes (one YAML file per method and dataset), installed as `ssl_coded.recipes`.

Only data lives here; `ssl_coded.config` finds the files with importlib.resources.
"""
