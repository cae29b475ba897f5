"""Training recipes (one YAML file per method and dataset), installed as `ssl_coded.recipes`.

Only data lives here; `ssl_coded.training.config` finds the files with importlib.resources.
"""

from ssl_coded.extras import check_same_tree

check_same_tree(__file__, "ssl_coded.recipes")
