"""`dino_loss_floor` is the lowest value lightly's DINOLoss can take: the loss of a student whose
distributions are the teacher's equals it, and any other student scores above it; the entropy itself is
checked against SciPy's."""

import numpy as np
import pytest
import scipy.stats
import torch
from lightly.loss import DINOLoss

from ssl_coded.loss_floors import dino_loss_floor


def teacher_outputs(seed: int, n: int = 6, d: int = 32) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    same = torch.randn(n, d, generator=generator)
    return [same, same.clone()]  # two global crops the teacher sees alike, so a student can match both


@pytest.mark.parametrize("epoch", [0, 3, 12])  # warming up (two temperatures of the schedule) and after
def test_the_floor_is_the_loss_of_a_student_that_matches_the_teacher(epoch):
    # softer teachers than the defaults (0.04), so that the entropies are far from 0
    criterion = DINOLoss(output_dim=32, warmup_teacher_temp=0.5, teacher_temp=1.0, warmup_teacher_temp_epochs=10)
    criterion.center.normal_(generator=torch.Generator().manual_seed(1))
    teacher = teacher_outputs(epoch)
    floor = dino_loss_floor(criterion, teacher, epoch)

    warming = epoch < 10
    temperature = float(criterion.teacher_temp_schedule[epoch]) if warming else criterion.teacher_temp
    logits = ((teacher[0] - criterion.center.view(-1)) / temperature).double().numpy()  # (n, d)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert float(floor) == pytest.approx(scipy.stats.entropy(p, axis=1).mean(), rel=1e-5)

    # a student whose softmax at lightly's student temperature is the teacher's distribution
    matching = torch.from_numpy(np.log(p)).float() * criterion.student_temp
    center = criterion.center.clone()
    assert float(criterion(teacher, [matching, matching], epoch=epoch)) == pytest.approx(float(floor), rel=1e-4)
    criterion.center.copy_(center)  # the call moved the centre
    other = matching + torch.randn(matching.shape, generator=torch.Generator().manual_seed(2))
    assert float(criterion(teacher, [other, other], epoch=epoch)) > float(floor) + 1e-3


def test_the_floor_takes_the_stacked_crops_too():
    criterion = DINOLoss(output_dim=32)
    teacher = teacher_outputs(0)
    assert torch.equal(dino_loss_floor(criterion, teacher), dino_loss_floor(criterion, torch.stack(teacher)))
