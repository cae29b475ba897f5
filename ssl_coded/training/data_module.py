"""The Lightning data module over in-memory splits: train batches, validation, and the kNN bank."""

from __future__ import annotations

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from ssl_coded.data import Splits
from ssl_coded.training.config import RecipeConfig


class SplitsDataModule(pl.LightningDataModule):
    def __init__(self, splits: Splits, config: RecipeConfig) -> None:
        super().__init__()
        self.splits, self.config = splits, config

    def train_dataloader(self) -> DataLoader:
        c = self.config
        return self.splits.train.loader(
            c.trainer.batch_size, shuffle=True, drop_last=True, num_workers=c.data.num_workers
        )

    def val_dataloader(self) -> DataLoader:
        return self.splits.val.loader(512, num_workers=self.config.data.num_workers)

    def bank_loader(self) -> DataLoader:
        """The validation kNN bank: (a seeded subset of) the train split."""
        return self.splits.train.subset(self.config.eval.bank_size, seed=self.config.seed).loader(512)
