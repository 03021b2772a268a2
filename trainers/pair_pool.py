"""Real-ESRGAN's training-pair pool (``_dequeue_and_enqueue``), for any family, seeded and resumable.

The reference keeps ``queue_size`` (180) degraded pairs per GPU. While the pool fills, a
batch is stored and trained on as it is; once full, every step shuffles the pool, trains
on its first ``B`` samples and puts the new batch in their place. This decorrelates the
samples of a batch -- in the reference, of its batch-level degradation draws; here, where
every draw is per sample, of the photos a batch comes from (the stream reads a shard,
i.e. a few photos' sub-images, at a time).

The pool swaps whole samples: every key of the batch (``lq``, ``gt``, ``gt_usm``, a mask, the
sampled degradation parameters ...) moves together, so nothing is ever paired with another
sample's image. It holds stream batches, before the family's device stage: they are uint8
(a quarter of the memory of float pairs; 180 Real-ESRGAN samples are 37 MB per worker), and
since every sample's degradation is a function of the sample alone (its noise is seeded per
sample), degrading a sample when it leaves the pool gives the very pair the reference would
have stored after degrading it on the way in.

Differences from the reference, both for exact resumption:

* the shuffle is ``torch.randperm`` with a generator seeded from (run seed, step, rank),
  not the global RNG, so it is a function of the step alone;
* the pool is part of the checkpoint (``state_dict``; every rank's pool, gathered to
  rank 0 by ``gather_states``), so a resumed run trains on exactly the samples it would have.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist


class PairPool:
    """A per-worker pool of ``size`` samples; ``size`` must be a multiple of the batch size.

    Args:
        size: Samples kept (Real-ESRGAN's ``queue_size``).
        seed: Run seed (with ``step`` and ``rank`` it seeds each shuffle).
        rank: This worker's rank.
    """

    def __init__(self, size: int, seed: int, rank: int = 0):
        if size < 1:
            raise ValueError(f"pool size must be positive, got {size}")
        self.size, self.seed, self.rank = int(size), int(seed), int(rank)
        self.filled = 0
        self.store: dict[str, torch.Tensor] | None = None

    def _generator(self, step: int) -> torch.Generator:
        seed = np.random.SeedSequence([self.seed, int(step), self.rank, 0x9001]).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(seed))

    def __call__(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """The samples to train on at ``step`` (0-based index of the batch)."""
        b = next(iter(batch.values())).shape[0]
        if self.size % b:
            raise ValueError(f"pool size {self.size} is not divisible by the batch size {b}")
        if self.store is None:
            self.store = {k: torch.zeros((self.size, *v.shape[1:]), dtype=v.dtype, device=v.device)
                          for k, v in batch.items()}
        if set(batch) != set(self.store):
            raise ValueError(f"batch keys {sorted(batch)} differ from the pool's {sorted(self.store)}")
        if self.filled < self.size:
            for k, v in batch.items():
                self.store[k][self.filled : self.filled + b] = v
            self.filled += b
            return batch
        perm = torch.randperm(self.size, generator=self._generator(step))
        out = {}
        for k, v in batch.items():
            shuffled = self.store[k][perm.to(self.store[k].device)]
            out[k] = shuffled[:b].clone()
            shuffled[:b] = v
            self.store[k] = shuffled
        return out

    def state_dict(self) -> dict | None:
        """``{"filled", "tensors": {key: tensor}}`` on the CPU, or None before the first batch."""
        if self.store is None:
            return None
        return {"filled": self.filled, "tensors": {k: v.cpu().clone() for k, v in self.store.items()}}

    def load_state_dict(self, state: dict | None, device: torch.device | str = "cpu") -> None:
        if state is None:
            self.filled, self.store = 0, None
            return
        tensors = state["tensors"]
        n = next(iter(tensors.values())).shape[0]
        if n != self.size:
            raise ValueError(f"checkpointed pool holds {n} samples, the config says {self.size}")
        self.filled = int(state["filled"])
        self.store = {k: v.to(device).clone() for k, v in tensors.items()}


def gather_states(pool: PairPool, device: torch.device) -> list[dict] | None:
    """Every rank's ``pool.state_dict()``, in rank order (call on all ranks; all get the list).

    Pools have one shape on every rank (same config, same number of steps), so one
    ``all_gather`` per key does it, on the device (NCCL) or the CPU (gloo).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        state = pool.state_dict()
        return [state] if state is not None else None
    if pool.store is None:  # before the first batch on every rank alike
        return None
    world = dist.get_world_size()
    out: list[dict] = [{"filled": pool.filled, "tensors": {}} for _ in range(world)]
    for key in sorted(pool.store):
        local = pool.store[key].to(device).contiguous()
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local)
        for r, part in enumerate(parts):
            out[r]["tensors"][key] = part.cpu()
    return out


def restore(pool: PairPool, states: list[dict] | None, rank: int, world: int, device: torch.device) -> bool:
    """Load this rank's pool from a checkpoint's gathered states; False (empty pool) when the
    checkpoint has none, or was written by a different number of workers or pool size."""
    ok = bool(states) and len(states) == world and "tensors" in states[rank]
    if not ok or next(iter(states[rank]["tensors"].values())).shape[0] != pool.size:
        pool.load_state_dict(None)
        return False
    pool.load_state_dict(states[rank], device)
    return True
