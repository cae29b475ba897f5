import torch

from ssl_coded.training.augment import BatchAugment


def test_no_op_settings_return_the_images():
    images = torch.rand(4, 1, 8, 8)
    augment = BatchAugment(crop_scale=(1.0, 1.0), aspect=(1.0, 1.0), brightness=0.0, contrast=0.0)
    torch.testing.assert_close(augment(images), images)


def test_flip_mirrors_and_views_differ_per_image():
    images = torch.rand(3, 2, 6, 6)
    flip = BatchAugment(crop_scale=(1.0, 1.0), aspect=(1.0, 1.0), horizontal_flip=1.0, brightness=0.0, contrast=0.0)
    torch.testing.assert_close(flip(images), images.flip(-1))
    same = torch.rand(1, 1, 8, 8).expand(16, 1, 8, 8)
    views = BatchAugment()(same)
    assert views.shape == same.shape
    assert (views[0] - views[1:]).abs().amax(dim=(1, 2, 3)).min() > 0  # each image its own crop
