import pytest
import torch
from ssl_coded.eval.preprocess import IMAGENET_MEAN, Preprocess, normalisation


def test_uint8_grayscale_becomes_normalised_rgb_as_by_hand():
    images = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    mean, std = normalisation("0.5:0.25", channels=3)
    out = Preprocess(3, mean, std)(images)
    by_hand = (images.double() / 255 - 0.5) / 0.25
    assert out.shape == (2, 3, 4, 4) and out.dtype == torch.float32
    for channel in range(3):
        assert torch.allclose(out[:, channel].double(), by_hand[:, 0], atol=1e-6)


def test_named_normalisations():
    assert normalisation("imagenet", 3)[0] == IMAGENET_MEAN
    assert normalisation("none", 3) is None
    assert normalisation("dataset", 1, ((0.2,), (0.3,))) == ((0.2,), (0.3,))
    assert normalisation("1,2,3:4,5,6", 3) == ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    float_images = torch.rand(2, 3, 2, 2)
    assert torch.equal(Preprocess()(float_images), float_images)  # float data passes as it comes


@pytest.mark.parametrize(
    ("spec", "channels", "message"),
    [
        ("imagenet-ish", 3, "is not one of imagenet, dataset, none"),
        ("0.1,0.2:0.3,0.4", 3, "2 values for an encoder that takes 3 channels"),
        ("0.5:0", 1, "every std must be positive"),
        ("imagenet", 1, "3 values for an encoder that takes 1 channels"),
    ],
)
def test_bad_normalisations_name_the_problem(spec, channels, message):
    with pytest.raises(ValueError, match=message):
        normalisation(spec, channels)


def test_rgb_data_for_a_grayscale_encoder_is_refused():
    with pytest.raises(ValueError, match="the data has 3 channels but the encoder takes 1"):
        Preprocess(1)(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
