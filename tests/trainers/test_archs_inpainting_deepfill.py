"""DeepFill v1 / v2 generators and discriminators against the MMEditing 0.x zoo, and contextual attention.

The key maps in tests/data/mmedit_checkpoint_keys (``deepfillv{1,2}_256x256_8x2_places``; the
CelebA configs build the same networks) list the zoo checkpoints' keys and shapes under
``generator.`` and ``disc.``: matching them means the published checkpoints load strictly.
Forward parity with mmedit is in test_arch_parity.py (goldens ``archs_inpainting_deepfill.npz``).
"""

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from trainers.archs import build_arch
from trainers.archs.deepfill_blocks import ContextualAttention
from trainers.checkpoint_io import extract_net_state, load_checkpoint_file, load_strict

KEY_DIR = Path(__file__).resolve().parents[1] / "data" / "mmedit_checkpoint_keys"
# (key map, generator arch, discriminator arch, spec's parameter counts in millions: G, D)
ZOO = [
    ("deepfillv1_256x256_8x2_places", "deepfill_v1", "deepfill_v1_disc", 3.60, 7.07),
    ("deepfillv2_256x256_8x2_places", "deepfill_v2", "deepfill_v2_disc", 4.41, 5.95),
]
NETS = [(cfg, arch, "generator") for cfg, arch, *_ in ZOO] + [(cfg, disc, "discriminator") for cfg, _, disc, *_ in ZOO]
TINY_G = dict(channel_factor=0.125, stage2_decoder_channel_factor=0.125)


def _key_map(config: str) -> dict:
    return json.loads((KEY_DIR / f"{config}.json").read_text())


def _generator_input(b: int = 2, h: int = 72, w: int = 80) -> torch.Tensor:
    """``[masked_img, ones, mask]`` as the inpaintor builds it: [-1, 1] image, zero in a box hole."""
    gt = torch.rand(b, 3, h, w) * 2 - 1
    mask = torch.zeros(b, 1, h, w)
    mask[:, :, h // 4 : h // 2, w // 4 : w // 2] = 1
    return torch.cat([gt * (1 - mask), torch.ones_like(mask), mask], dim=1)


@pytest.mark.parametrize("config, arch, section", NETS, ids=[f"{a}" for _, a, _ in NETS])
def test_state_dict_matches_zoo(config, arch, section):
    ref = _key_map(config)[section]
    model = build_arch(arch)  # the defaults are the zoo network
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == ref["keys"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    buffers = sum(v.numel() for v in model.state_dict().values()) - ref["num_params"]
    assert buffers == ref["num_buffer_elems"]  # fuse_kernel / spectral norm's u, v


@pytest.mark.parametrize("config, arch, disc, g_millions, d_millions", ZOO, ids=[z[1] for z in ZOO])
def test_parameter_counts_match_the_spec(config, arch, disc, g_millions, d_millions):
    assert round(sum(p.numel() for p in build_arch(arch).parameters()) / 1e6, 2) == g_millions
    assert round(sum(p.numel() for p in build_arch(disc).parameters()) / 1e6, 2) == d_millions


@pytest.mark.parametrize("config, arch, disc, g_millions, d_millions", ZOO, ids=[z[1] for z in ZOO])
def test_fake_zoo_checkpoint_loads_strictly(config, arch, disc, g_millions, d_millions, tmp_path):
    ref = _key_map(config)
    state = {}
    for section in ("generator", "discriminator"):
        prefix = ref[section]["checkpoint_prefix"]
        state |= {prefix + k: torch.randn(shape) for k, shape in ref[section]["keys"].items()}
    assert sorted(state) == sorted(ref["full_model_state_dict_keys"])  # nothing else in the zoo file
    file = tmp_path / "zoo.pth"
    torch.save({"meta": {"iter": 1000, "mmedit_version": "0.16.1"}, "state_dict": state}, file)
    ckpt = load_checkpoint_file(file)

    for role, name in (("generator", arch), ("disc", disc)):
        weights, source = extract_net_state(ckpt, role)
        assert source == f"zoo {role}"
        model = build_arch(name)
        load_strict(model, weights)
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[f"{role}.{key}"]), key


@pytest.mark.parametrize("arch", ["deepfill_v1", "deepfill_v2"])
def test_generator_forward_backward(arch):
    model = build_arch(arch, **TINY_G)
    x = _generator_input()
    stage1, stage2 = model(x)
    assert stage1.shape == stage2.shape == (2, 3, 72, 80)
    assert stage1.abs().max() <= 1 and stage2.abs().max() <= 1  # clamp (v1) / tanh (v2)
    (stage1.mean() + stage2.mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("arch", ["deepfill_v1", "deepfill_v2"])
def test_zoo_generator_forward_shapes_and_offset(arch):
    model = build_arch(arch, return_offset=True).eval()
    with torch.no_grad():
        stage1, stage2, attention = model(_generator_input(1, 72, 88))
    assert stage1.shape == stage2.shape == (1, 3, 72, 88)
    assert attention.shape == (1, 9, 11, 9, 11)  # patch grid, then query grid, at 1/8 size
    torch.testing.assert_close(attention.sum(dim=(1, 2)), torch.ones(1, 9, 11))


def test_stage2_sees_the_coarse_composite():
    model = build_arch("deepfill_v1", **TINY_G).eval()
    x = _generator_input(1)
    seen = {}
    model.stage2.register_forward_pre_hook(lambda m, args: seen.update(x=args[0], mask=args[1]))
    with torch.no_grad():
        stage1, _ = model(x)
    mask = x[:, -1:]
    torch.testing.assert_close(seen["x"][:, :3], stage1 * mask + x[:, :3] * (1 - mask))
    torch.testing.assert_close(seen["x"][:, 3:], x[:, 3:])
    assert torch.equal(seen["mask"], mask)


def test_generator_weights_start_as_the_zoo_init():
    model = build_arch("deepfill_v2")
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(weights.std().item() - 0.02) < 1e-3
    assert all(m.bias.abs().max() == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert torch.equal(model.stage2.contextual_attention_neck.contextual_attention.fuse_kernel[0, 0], torch.eye(3))


def test_v1_discriminators_take_a_pair_or_two_arguments():
    model = build_arch("deepfill_v1_disc", global_max_channels=8, global_fc_in_channels=128,
                       local_max_channels=16, local_fc_in_channels=64)
    img, patch = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 32, 32)
    g, l = model((img, patch))
    assert g.shape == l.shape == (2, 1)
    g2, l2 = model(img, patch)
    assert torch.equal(g, g2) and torch.equal(l, l2)
    with pytest.raises(TypeError, match="local patches"):
        model(img)
    (g.sum() + l.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_v1_discriminators_at_zoo_size_and_wrong_size_refused():
    model = build_arch("deepfill_v1_disc").eval()
    with torch.no_grad():
        g, l = model((torch.rand(1, 3, 256, 256), torch.rand(1, 3, 128, 128)))
        assert g.shape == l.shape == (1, 1)
        with pytest.raises(ValueError, match="65536 features"):
            model((torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128)))


def test_v2_discriminator_scores_a_map_and_power_iterates_in_training_only():
    model = build_arch("deepfill_v2_disc", max_channels=8)
    x = torch.rand(2, 4, 64, 128)
    u = model.conv1.conv.weight_u.clone()
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 8, 1, 2)
        assert torch.equal(model.conv1.conv.weight_u, u)
    out = model.train()(x)
    assert not torch.equal(model.conv1.conv.weight_u, u)
    out.mean().backward()
    assert model.conv6.conv.weight_orig.grad is not None
    assert build_arch("deepfill_v2_disc").eval()(torch.rand(1, 4, 256, 256)).shape == (1, 256, 4, 4)


# ---- contextual attention -------------------------------------------------------------------

def _scene(channels: int = 16, size: int = 12, shift: int = 6, seed: int = 0):
    """Features whose hole can only be explained by one background region.

    A random ``size x size`` low-resolution map; the 6x6 block at ``(shift, shift)`` is copied
    to the top-left corner, and the centre 4x4 of that copy is the hole. Every hole query's
    3x3 neighbourhood therefore has exactly one unmasked twin, ``shift`` away (its own copy
    touches the hole and is excluded). The map is nearest-upsampled x2, so the module's
    nearest x0.5 downsampling recovers it exactly.
    """
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(1, channels, size, size, generator=g)
    low[:, :, :6, :6] = low[:, :, shift : shift + 6, shift : shift + 6]
    feat = F.interpolate(low, scale_factor=2)
    mask = torch.zeros(1, 1, 2 * size, 2 * size)
    mask[:, :, 2:10, 2:10] = 1  # low-res rows/cols 1..4
    return feat, mask


def test_contextual_attention_copies_the_unique_matching_background_patch():
    feat, mask = _scene()
    with torch.no_grad():
        out, attention = ContextualAttention()(feat, feat, mask)
    assert attention.shape == (1, 12, 12, 12, 12)  # patch row, patch col, query row, query col
    for qi in range(1, 5):
        for qj in range(1, 5):
            scores = attention[0, :, :, qi, qj]
            assert divmod(scores.argmax().item(), 12) == (qi + 6, qj + 6)
            assert scores[qi + 6, qj + 6] > 0.999
    # Patches touching the hole are never copied, by any query.
    assert attention[0, :6, :6].abs().max() == 0
    # Inside the hole (away from its rim, where non-hole queries also paste), the output is
    # the background twin, 12 full-resolution pixels away.
    torch.testing.assert_close(out[..., 3:9, 3:9], feat[..., 15:21, 15:21], rtol=0, atol=1e-5)


def test_contextual_attention_without_mask_splits_between_the_two_copies():
    feat, _ = _scene()
    with torch.no_grad():
        _, attention = ContextualAttention()(feat, feat)
    # The hole's own patch matches as well as its twin: half the attention each.
    torch.testing.assert_close(attention[0, 2, 3, 2, 3], torch.tensor(0.5), rtol=0, atol=1e-3)
    torch.testing.assert_close(attention[0, 8, 9, 2, 3], torch.tensor(0.5), rtol=0, atol=1e-3)
