"""Models by name (torchvision, timm, user code): the layer evaluation and training both build encoders
from. It needs torch and, lazily, torchvision or timm; nothing here knows of training or evaluation."""

from ssl_coded.models.zoo import KINDS, EncoderError, build_encoder, classifier_name, feature_dim, input_channels

__all__ = ["KINDS", "EncoderError", "build_encoder", "classifier_name", "feature_dim", "input_channels"]
