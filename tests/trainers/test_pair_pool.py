"""Real-ESRGAN's training-pair pool: fill/swap semantics, divisibility, seeding, exact resume."""

from __future__ import annotations

import pytest
import torch

from trainers.pair_pool import PairPool, gather_states, restore


def batch(i: int, b: int = 4) -> dict[str, torch.Tensor]:
    """A batch whose pairs are tagged by their (step, index) on the 8-bit grid."""
    tag = torch.arange(b, dtype=torch.float32) + 10 * i
    lq = (tag % 256)[:, None, None, None].expand(b, 3, 2, 2) / 255
    gt = ((tag + 5) % 256)[:, None, None, None].expand(b, 3, 8, 8) / 255
    return {"lq": lq.clone(), "gt": gt.clone()}


def tags(out: dict[str, torch.Tensor]) -> list[int]:
    return [int(round(v)) for v in (out["lq"][:, 0, 0, 0] * 255).tolist()]


def run(pool: PairPool, steps: range) -> list[list[int]]:
    return [tags(pool(batch(s), s)) for s in steps]


def test_fills_then_swaps_whole_batches():
    pool = PairPool(12, seed=0)
    seen = run(pool, range(3))  # filling: the batch itself is trained on
    assert seen == [[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23]] and pool.filled == 12
    out = pool(batch(3), 3)
    assert set(tags(out)) <= {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23}  # dequeued from the pool
    held = sorted(int(round(v)) for v in pool.lq[:, 0, 0, 0].float().tolist())
    assert sorted(held + tags(out)) == sorted([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33])
    # the target travels with its LQ
    assert torch.equal(out["gt"][:, 0, 0, 0] * 255 - 5, out["lq"][:, 0, 0, 0] * 255)


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
    assert state["lq"].dtype == torch.uint8 and state["filled"] == 8
    resumed = PairPool(8, seed=3)
    resumed.load_state_dict(state)
    got += run(resumed, range(5, 12))
    assert got == expected
    # the float values survive the uint8 round trip exactly (every pair is on the 8-bit grid)
    again = PairPool(8, seed=3)
    again.load_state_dict(state)
    x, y = first(batch(5), 5), again(batch(5), 5)
    assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["gt"], y["gt"])


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
