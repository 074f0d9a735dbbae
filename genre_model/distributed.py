"""One process or many: what training (``python -m train``) and batch prediction (``genre-model predict``) need
from ``torch.distributed``.

Launched by ``torchrun --nproc_per_node N ...`` (or ``--nnodes``), each process finds RANK, WORLD_SIZE and LOCAL_RANK
in its environment; `start` joins the process group (NCCL on CUDA, else gloo). Launched plainly, nothing is set and
`Processes` describes a world of one, so single-process code runs unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, evaluates and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, asked: str | None) -> torch.device | None:
        """Each process's GPU (cuda:LOCAL_RANK) when CUDA is asked for or available, else None (as asked)."""
        if self.distributed and (asked in (None, "cuda") and torch.cuda.is_available()):
            return torch.device("cuda", self.local_rank)
        return torch.device(asked) if asked else None

    def shard(self, items: list) -> list:
        """This rank's share of ``items``: every world_size-th one from its rank (in order)."""
        return items[self.rank :: self.world_size]

    def gather(self, mine: list) -> list:
        """Undo `shard`: every rank's share, interleaved back into the original order (on every rank)."""
        if not self.distributed:
            return mine
        shares: list[list] = [[] for _ in range(self.world_size)]
        dist.all_gather_object(shares, mine)
        return [shares[i % self.world_size][i // self.world_size] for i in range(sum(map(len, shares)))]

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, total_and_count: torch.Tensor) -> float:
        """Sum of (total, count) pairs over all ranks -> total / count."""
        if self.distributed:
            dist.all_reduce(total_and_count)
        return float(total_and_count[0] / total_and_count[1])

    def extremes(self, lo_hi: torch.Tensor) -> torch.Tensor:
        """(k, 2) rows of (min, max) -> each row's min and max over all ranks."""
        if not self.distributed:
            return lo_hi
        flipped = torch.stack([-lo_hi[:, 0], lo_hi[:, 1]], dim=1)  # one MAX reduction does both
        dist.all_reduce(flipped, op=dist.ReduceOp.MAX)
        return torch.stack([-flipped[:, 0], flipped[:, 1]], dim=1)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def start() -> Processes:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Processes()
    procs = Processes(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(procs.local_rank)
        dist.init_process_group(backend)
    return procs


def stop(procs: Processes) -> None:
    if procs.distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def processes() -> Iterator[Processes]:
    """`start`; on the way out `stop`, after a barrier when the work ended without an error: a rank that tore its
    process group down while rank 0 was still saving aborted (gloo: "terminate called without an active exception",
    3 of 60 torchrun runs here; none of 100 with the barrier). After an error no barrier: the other ranks may never
    reach it."""
    procs = start()
    try:
        yield procs
        procs.barrier()
    finally:
        stop(procs)
