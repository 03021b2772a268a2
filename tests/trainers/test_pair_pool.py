"""Real-ESRGAN's training-pair pool: fill/swap semantics, every key kept aligned, divisibility,
seeding, exact resume."""

from __future__ import annotations

import pytest
import torch

from trainers.pair_pool import PairPool, gather_states, restore


def batch(i: int, b: int = 4) -> dict[str, torch.Tensor]:
    """A stream batch (uint8 channels-last images plus other columns) whose samples are tagged
    by (step, index) in every key."""
    tag = torch.arange(b) + 10 * i
    image = lambda offset, size: ((tag + offset) % 256).to(torch.uint8)[:, None, None, None].expand(b, size, size, 3)
    return {"lq": image(0, 2).clone(), "gt": image(5, 8).clone(), "mask": image(7, 8).clone(),
            "params": tag.double()[:, None].expand(b, 3) * 0.5}


def tags(out: dict[str, torch.Tensor]) -> list[int]:
    return [int(v) for v in out["lq"][:, 0, 0, 0].tolist()]


def run(pool: PairPool, steps: range) -> list[list[int]]:
    return [tags(pool(batch(s), s)) for s in steps]


def test_fills_then_swaps_whole_batches():
    pool = PairPool(12, seed=0)
    seen = run(pool, range(3))  # filling: the batch itself is trained on
    assert seen == [[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23]] and pool.filled == 12
    out = pool(batch(3), 3)
    assert set(tags(out)) <= {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23}  # dequeued from the pool
    held = sorted(int(v) for v in pool.store["lq"][:, 0, 0, 0].tolist())
    assert sorted(held + tags(out)) == sorted([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33])
    # every key travels with its LQ: target, mask and sampled parameters stay one sample's
    lq = out["lq"][:, 0, 0, 0].long()
    assert torch.equal(out["gt"][:, 0, 0, 0].long() - 5, lq) and torch.equal(out["mask"][:, 0, 0, 0].long() - 7, lq)
    assert torch.equal(out["params"][:, 0], lq.double() * 0.5)
    assert {k: v.dtype for k, v in out.items()} == {k: v.dtype for k, v in batch(0).items()}


def test_keys_must_not_change():
    pool = PairPool(8, seed=0)
    pool(batch(0), 0)
    with pytest.raises(ValueError, match="differ from the pool"):
        pool({k: v for k, v in batch(1).items() if k != "mask"}, 1)


def test_seeded_by_seed_step_and_rank():
    a = run(PairPool(8, seed=1), range(10))
    assert a == run(PairPool(8, seed=1), range(10))
    assert a != run(PairPool(8, seed=2), range(10))
    assert a != run(PairPool(8, seed=1, rank=1), range(10))


def test_resume_from_state_dict_is_exact():
    full = PairPool(8, seed=3)
    expected = run(full, range(12))
    first = PairPool(8, seed=3)
    got = run(first, range(5))
    state = first.state_dict()
    assert state["tensors"]["lq"].dtype == torch.uint8 and state["filled"] == 8
    resumed = PairPool(8, seed=3)
    resumed.load_state_dict(state)
    got += run(resumed, range(5, 12))
    assert got == expected
    again = PairPool(8, seed=3)
    again.load_state_dict(state)
    x, y = first(batch(5), 5), again(batch(5), 5)
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_restore_from_gathered_states_and_mismatches():
    pool = PairPool(8, seed=0)
    assert pool.state_dict() is None and gather_states(pool, torch.device("cpu")) is None
    run(pool, range(3))
    states = gather_states(pool, torch.device("cpu"))  # no process group: this rank alone
    assert len(states) == 1
    fresh = PairPool(8, seed=0)
    assert restore(fresh, states, rank=0, world=1, device=torch.device("cpu"))
    assert run(fresh, range(3, 6)) == run(pool, range(3, 6))
    other_world = PairPool(8, seed=0)
    assert not restore(other_world, states, rank=0, world=2, device=torch.device("cpu"))
    assert other_world.filled == 0  # refills from scratch
    other_size = PairPool(16, seed=0)
    assert not restore(other_size, states, rank=0, world=1, device=torch.device("cpu"))
    assert not restore(PairPool(8, seed=0), None, rank=0, world=1, device=torch.device("cpu"))


def test_size_must_divide_by_the_batch():
    with pytest.raises(ValueError, match="not divisible by the batch size 4"):
        PairPool(10, seed=0)(batch(0), 0)
    with pytest.raises(ValueError, match="positive"):
        PairPool(0, seed=0)
