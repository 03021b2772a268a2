"""The TTSR sampler against mmedit 0.16.1's pipeline objects (golden) and against its definition:
shared flips for lq/gt/lq_up, an independent draw for ref/ref_downup, mod-crop, and the one-line
error for a sample without its reference."""

from pathlib import Path

import numpy as np
import pytest

from preprocessing.schema import encode_png
from trainers.samplers.ttsr import TTSRDataConfig, TTSRSampler, make_views

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "ttsr_sampler.npz"


def _members(gt, ref, key="s1"):
    return {"__key__": key, "gt.png": encode_png(gt), "ref.png": encode_png(ref)}


@pytest.mark.parametrize("case", ["gt44x52_ref50x40", "gt40x32_ref31x70"])
def test_views_match_mmedit_pipeline(case):
    with np.load(GOLDEN) as g:
        want = {k.split("/", 1)[1]: g[k] for k in g.files if k.startswith(case + "/")}
    got = TTSRSampler(TTSRDataConfig()).val(_members(want["gt"], want["ref"]), np.random.default_rng(0))
    for key, ref_key in (("lq", "lq"), ("lq_up", "lq_up"), ("ref", "ref_out"), ("ref_downup", "ref_downup")):
        np.testing.assert_array_equal(got[key], want[ref_key], err_msg=key)
    np.testing.assert_array_equal(got["gt"], want["gt"])


def test_train_flips_lq_gt_lq_up_together_and_ref_apart():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    ref = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    plain = make_views(gt, ref, 4)
    seen_ref_differ = False
    for seed in range(12):
        out = TTSRSampler(TTSRDataConfig()).train(_members(gt, ref), np.random.default_rng(seed))
        transforms = _transforms(plain["gt"])
        t = next(i for i, v in enumerate(transforms) if v.shape == out["gt"].shape and np.array_equal(v, out["gt"]))
        for key in ("lq", "lq_up"):
            np.testing.assert_array_equal(out[key], _transforms(plain[key])[t], err_msg=key)
        r = next(i for i, v in enumerate(_transforms(plain["ref"])) if v.shape == out["ref"].shape
                 and np.array_equal(v, out["ref"]))
        np.testing.assert_array_equal(out["ref_downup"], _transforms(plain["ref_downup"])[r])
        seen_ref_differ |= r != t
    assert seen_ref_differ


def _transforms(img):
    """The 8 results of (hflip, vflip, transpose) in augment's order of application."""
    out = []
    for h in (0, 1):
        for v in (0, 1):
            for t in (0, 1):
                x = img[:, ::-1] if h else img
                x = x[::-1] if v else x
                out.append(x.transpose(1, 0, 2) if t else x)
    return out


def test_gt_cut_to_a_multiple_of_the_scale():
    gt = np.full((42, 37, 3), 100, np.uint8)
    out = make_views(gt, gt, 4)
    assert out["gt"].shape == out["lq_up"].shape == out["ref"].shape == (40, 36, 3)
    assert out["lq"].shape == (10, 9, 3)


def test_missing_reference_is_one_line_naming_the_sample():
    gt = np.zeros((16, 16, 3), np.uint8)
    members = {"__key__": "CUFED_007", "gt.png": encode_png(gt)}
    with pytest.raises(ValueError, match=r"^sample CUFED_007: no reference image") as err:
        TTSRSampler(TTSRDataConfig()).train(members, np.random.default_rng(0))
    assert "\n" not in str(err.value)
