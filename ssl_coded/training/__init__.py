"""Training: typed recipes, datasets, augmentation, backbones, methods, the Lightning loop, run directories.

Needs the `train` extra (`pip install 'ssl-coded[train]'`).
"""

from ssl_coded.extras import require_installed

require_installed(("pytorch_lightning", "lightly", "omegaconf", "torchvision", "sklearn", "matplotlib"), "train")
