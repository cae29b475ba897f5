"""MAE (He et al. 2022) from lightly's masked ViT (torchvision) and MAE decoder."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from lightly.models import utils
from lightly.models.modules import MaskedVisionTransformerTorchvision
from lightly.models.modules.masked_autoencoder import MAEDecoder
from torch import Tensor, nn

from ssl_coded.training.methods.base import SSLMethod


class MAE(SSLMethod):
    """Mask most patches, encode the rest, reconstruct the masked pixels (optionally normalised
    per patch). Needs `model.backbone: vit`.

    Coded branch placements: "tokens" (default; the encoder's transformer blocks run on coded
    token sequences) or "decoder" (the decoder's blocks run on coded token sequences).
    """

    placements: ClassVar[dict[str, str]] = {
        "tokens": "backbone.vit.encoder.layers",
        "decoder": "decoder.decoder.layers",
    }

    def __init__(self, config, **data) -> None:
        if config.model.backbone != "vit":
            raise ValueError(f"MAE needs model.backbone=vit, got {config.model.backbone!r}")
        super().__init__(config, **data)
        m, vit = config.method, self.backbone
        self.backbone = MaskedVisionTransformerTorchvision(vit=vit)  # its forward: the class token
        self.patch_size, self.sequence_length = vit.patch_size, vit.seq_length
        self.decoder = MAEDecoder(
            seq_length=vit.seq_length,
            num_layers=m.decoder_depth,
            num_heads=max(1, m.decoder_dim // 32),
            embed_input_dim=vit.hidden_dim,
            hidden_dim=m.decoder_dim,
            mlp_dim=4 * m.decoder_dim,
            out_dim=vit.patch_size**2 * data["in_channels"],
        )
        self.mask_token = nn.Parameter(torch.zeros(m.decoder_dim))

    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        images = self.view(images)
        batch_size = images.shape[0]
        idx_keep, idx_mask = utils.random_token_mask(
            size=(batch_size, self.sequence_length), mask_ratio=self.config.method.mask_ratio, device=images.device
        )
        encoded = self.backbone.encode(images, idx_keep=idx_keep)
        decoded_in = utils.repeat_token(self.mask_token.view(1, 1, -1), (batch_size, self.sequence_length))
        decoded_in = utils.set_at_index(decoded_in, idx_keep, self.decoder.embed(encoded).type_as(decoded_in))
        predicted = self.decoder.predict(utils.get_at_index(self.decoder.decode(decoded_in), idx_mask))
        target = utils.get_at_index(utils.patchify(images, self.patch_size), idx_mask - 1)
        if self.config.method.norm_pix_loss:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        return F.mse_loss(predicted, target), encoded[:, 0]
