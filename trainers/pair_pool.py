"""Real-ESRGAN's training-pair pool (``_dequeue_and_enqueue``), seeded and resumable.

The reference keeps ``queue_size`` (180) degraded pairs per GPU. While the pool fills, a
batch is stored and trained on as it is; once full, every step shuffles the pool, trains
on its first ``B`` pairs and puts the new batch in their place. This decorrelates the
pairs of a batch -- in the reference, of its batch-level degradation draws; here, where
every draw is per sample, of the photos a batch comes from (the stream reads a shard,
i.e. a few photos' sub-images, at a time).

Differences from the reference, both for exact resumption:

* the shuffle is ``torch.randperm`` with a generator seeded from (run seed, step, rank),
  not the global RNG, so it is a function of the step alone;
* the pool is part of the checkpoint (``state_dict``; every rank's pool, gathered to
  rank 0 by ``gather_states``), so a resumed run trains on exactly the pairs it would
  have. Pairs are stored as uint8: every pair restoray trains on is on the 8-bit grid
  (the stream ships uint8; the device stage quantises its target the same way), so this
  is exact and a quarter of the memory (180 pairs of 256 / 64 px: 37 MB per worker).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.detach().float().clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0)


class PairPool:
    """A per-worker pool of ``size`` (lq, gt) pairs; ``size`` must be a multiple of the batch size.

    Args:
        size: Pairs kept (Real-ESRGAN's ``queue_size``).
        seed: Run seed (with ``step`` and ``rank`` it seeds each shuffle).
        rank: This worker's rank.
    """

    def __init__(self, size: int, seed: int, rank: int = 0):
        if size < 1:
            raise ValueError(f"pool size must be positive, got {size}")
        self.size, self.seed, self.rank = int(size), int(seed), int(rank)
        self.filled = 0
        self.lq: torch.Tensor | None = None
        self.gt: torch.Tensor | None = None

    def _generator(self, step: int) -> torch.Generator:
        seed = np.random.SeedSequence([self.seed, int(step), self.rank, 0x9001]).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(seed))

    def __call__(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """The pairs to train on at ``step`` (0-based index of the batch)."""
        lq, gt = batch["lq"], batch["gt"]
        b = lq.shape[0]
        if self.size % b:
            raise ValueError(f"pool size {self.size} is not divisible by the batch size {b}")
        if self.lq is None:
            self.lq = torch.zeros((self.size, *lq.shape[1:]), dtype=torch.uint8, device=lq.device)
            self.gt = torch.zeros((self.size, *gt.shape[1:]), dtype=torch.uint8, device=gt.device)
        if self.filled < self.size:
            self.lq[self.filled : self.filled + b] = _to_u8(lq)
            self.gt[self.filled : self.filled + b] = _to_u8(gt)
            self.filled += b
            return batch
        perm = torch.randperm(self.size, generator=self._generator(step)).to(self.lq.device)
        self.lq, self.gt = self.lq[perm], self.gt[perm]
        out = {"lq": _to_float(self.lq[:b].clone()), "gt": _to_float(self.gt[:b].clone())}
        self.lq[:b] = _to_u8(lq)
        self.gt[:b] = _to_u8(gt)
        return {**batch, **out}

    def state_dict(self) -> dict | None:
        """``{"filled", "lq", "gt"}`` on the CPU (uint8), or None before the first batch."""
        if self.lq is None:
            return None
        return {"filled": self.filled, "lq": self.lq.cpu().clone(), "gt": self.gt.cpu().clone()}

    def load_state_dict(self, state: dict | None, device: torch.device | str = "cpu") -> None:
        if state is None:
            self.filled, self.lq, self.gt = 0, None, None
            return
        if state["lq"].shape[0] != self.size:
            raise ValueError(f"checkpointed pool holds {state['lq'].shape[0]} pairs, the config says {self.size}")
        self.filled = int(state["filled"])
        self.lq = state["lq"].to(device=device, dtype=torch.uint8).clone()
        self.gt = state["gt"].to(device=device, dtype=torch.uint8).clone()


def gather_states(pool: PairPool, device: torch.device) -> list[dict] | None:
    """Every rank's ``pool.state_dict()``, in rank order (call on all ranks; all get the list).

    Pools have one shape on every rank (same config, same number of steps), so one
    ``all_gather`` per tensor does it, on the device (NCCL) or the CPU (gloo).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        state = pool.state_dict()
        return [state] if state is not None else None
    if pool.lq is None:  # before the first batch on every rank alike
        return None
    world = dist.get_world_size()
    out: list[dict] = [{"filled": pool.filled} for _ in range(world)]
    for key in ("lq", "gt"):
        local = getattr(pool, key).to(device).contiguous()
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local)
        for r, part in enumerate(parts):
            out[r][key] = part.cpu()
    return out


def restore(pool: PairPool, states: list[dict] | None, rank: int, world: int, device: torch.device) -> bool:
    """Load this rank's pool from a checkpoint's gathered states; False (empty pool) when the
    checkpoint has none, or was written by a different number of workers or pool size."""
    if not states or len(states) != world or states[rank]["lq"].shape[0] != pool.size:
        pool.load_state_dict(None)
        return False
    pool.load_state_dict(states[rank], device)
    return True
