"""Two processes (gloo, CPU): coding the gathered batch equals one process coding the global batch."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ssl_coded import CodedSmoothing


def make_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).double()  # no batch norm


def global_batch():
    return torch.randn(12, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def regularizer():
    return CodedSmoothing(weight=1.0, coded_ratio=1.25, gather_distributed=True)  # N = 15: uneven shares


def worker(rank, world, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    net = make_net()
    x = global_batch().chunk(world)[rank]
    penalty = regularizer()(net, x)
    penalty.backward()
    grads = [p.grad.clone() for p in net.parameters()]
    for g in grads:  # what DDP does: average the gradients over ranks
        dist.all_reduce(g)
        g /= world
    results[rank] = (penalty.item(), grads)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_gathered_coded_branch_matches_one_process_on_the_global_batch():
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(worker, args=(2, free_port(), results), nprocs=2, join=True)

    net = make_net()
    reference = regularizer()(net, global_batch())  # not distributed: codes all 12 at once
    reference.backward()
    mean_penalty = (results[0][0] + results[1][0]) / 2
    assert abs(mean_penalty - reference.item()) < 1e-12
    for averaged, expected in zip(results[0][1], [p.grad for p in net.parameters()], strict=True):
        torch.testing.assert_close(averaged, expected)
    # and gathering matters: coding each half locally gives another penalty
    local = CodedSmoothing(weight=1.0, coded_ratio=1.25)
    halves = sum(local(make_net(), half).item() for half in global_batch().chunk(2)) / 2
    assert abs(halves - reference.item()) > 1e-6
