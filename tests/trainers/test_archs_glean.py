"""``glean`` (GLEANStyleGANv2) and ``stylegan2_disc`` against the MMEditing 0.x zoo: key maps of
the four GLEAN configs (generator and discriminator), strict zoo-layout loading, the StyleGAN2
bank file (mmgen's published layout), the frozen bank, forward/backward and bad inputs.

Key maps in tests/data/mmedit_checkpoint_keys: ``glean_in128out1024_4x2_300k_ffhq_celebahq`` is
the shared one; the other three were made by tests/golden/make_glean_key_maps.py from mmedit's
modules. Full-size networks are built on the meta device (shapes only, no 700 MB of weights).
Forward values are checked against mmedit in test_arch_parity.py (archs_glean.npz).
"""

import functools

import pytest
import torch

from arch_helpers import key_map, one_thread  # noqa: F401 (one_thread: the module's fixture)
from trainers.archs import build_arch
from trainers.archs.glean import load_stylegan2_bank
from trainers.checkpoint_io import extract_net_state, load_strict

CONFIGS = ["glean_in128out1024_4x2_300k_ffhq_celebahq", "glean_ffhq_16x", "glean_cat_8x", "glean_cat_16x"]
ROLES = {"generator": "glean", "discriminator": "stylegan2_disc"}
TINY_G = dict(in_size=8, out_size=32, style_channels=16, num_mlps=2, rrdb_channels=8, num_rrdbs=1, width_divisor=32)
TINY_D = dict(in_size=32, width_divisor=32)
pytestmark = pytest.mark.usefixtures("one_thread")


@functools.cache
def _meta_build(config: str, role: str) -> torch.nn.Module:
    with torch.device("meta"):
        return build_arch(ROLES[role], **key_map(config)[role]["kwargs"])


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("config", CONFIGS)
def test_state_dict_matches_zoo(config, role):
    ref = key_map(config)[role]
    net = _meta_build(config, role)
    got = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert got == ref["keys"]
    assert list(got) == list(ref["keys"])  # mmedit's registration order too
    assert sum(p.numel() for p in net.parameters()) == ref["num_params"]


def test_zoo_sizes_and_frozen_bank():
    """The table's figures (model_zoo.md: D 29.01M, 175.5M total for x16) and what the zoo trains."""
    g = _meta_build("glean_ffhq_16x", "generator")
    d = _meta_build("glean_ffhq_16x", "discriminator")
    assert round(sum(p.numel() for p in d.parameters()) / 1e6, 2) == 29.01
    assert round(sum(p.numel() for p in g.parameters()) / 1e6, 1) == 175.5
    assert not any(p.requires_grad for p in g.generator.parameters())
    trainable = [n for n, p in g.named_parameters() if p.requires_grad]
    assert trainable and all(not n.startswith("generator.") for n in trainable)
    assert len(g.generator.injected_noise()) == 17


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_arch("glean", **TINY_G), build_arch("stylegan2_disc", **TINY_D)


def test_zoo_layout_checkpoint_loads_strictly(tiny, tmp_path):
    """mmedit's GLEAN file layout (``generator.*`` with the bank under ``generator.generator.*``,
    ``discriminator.*``) loads into both roles."""
    g, d = tiny
    state = {f"generator.{k}": torch.full_like(v, 0.5) for k, v in g.state_dict().items()}
    state |= {f"discriminator.{k}": torch.full_like(v, 0.25) for k, v in d.state_dict().items()}
    ckpt = {"meta": {"mmedit_version": "0.16.1"}, "state_dict": state}
    g2, d2 = build_arch("glean", **TINY_G), build_arch("stylegan2_disc", **TINY_D)
    load_strict(g2, extract_net_state(ckpt, "generator")[0])
    load_strict(d2, extract_net_state(ckpt, "discriminator")[0])
    assert all((p == 0.5).all() for p in g2.parameters()) and all((p == 0.25).all() for p in d2.parameters())


def _mmgen_file(path, bank, disc):
    """A tiny StyleGAN2 checkpoint in mmgen's published layout."""
    state = {f"generator_ema.{k}": v + 1 for k, v in bank.state_dict().items()}
    state |= {f"generator.{k}": v for k, v in bank.state_dict().items()}
    state |= {f"discriminator.{k}": v - 1 for k, v in disc.state_dict().items()}
    torch.save({"meta": {"mmgen_version": "0.3.0"}, "state_dict": state}, path)
    return path


def test_stylegan2_bank_file_loads_into_glean_and_disc(tiny, tmp_path):
    g, d = tiny
    torch.manual_seed(1)
    src_g, src_d = build_arch("glean", **TINY_G), build_arch("stylegan2_disc", **TINY_D)
    path = _mmgen_file(tmp_path / "stylegan2-tiny.pth", src_g.generator, src_d)
    g2, d2 = build_arch("glean", **TINY_G), build_arch("stylegan2_disc", **TINY_D)
    encoder_before = g2.encoder.state_dict()
    load_stylegan2_bank(g2, str(path), "generator_ema", "task.stylegan2_weights")
    load_stylegan2_bank(d2, f"file://{path}", "discriminator", "task.stylegan2_weights")
    for k, v in src_g.generator.state_dict().items():
        assert torch.equal(g2.generator.state_dict()[k], v + 1), k
    for k, v in src_d.state_dict().items():
        assert torch.equal(d2.state_dict()[k], v - 1), k
    assert all(torch.equal(v, g2.encoder.state_dict()[k]) for k, v in encoder_before.items())
    assert not any(p.requires_grad for p in g2.generator.parameters())


def test_stylegan2_bank_errors_are_one_line(tiny, tmp_path):
    g, d = tiny
    field = "task.stylegan2_weights"
    with pytest.raises(ValueError, match=r"^task\.stylegan2_weights: checkpoint not found"):
        load_stylegan2_bank(g, str(tmp_path / "missing.pth"), "generator_ema", field)
    path = _mmgen_file(tmp_path / "sg.pth", g.generator, d)
    with pytest.raises(ValueError, match=r"no 'ema\.\*' tensors"):
        load_stylegan2_bank(g, str(path), "ema", field)
    wide = build_arch("glean", **(TINY_G | {"width_divisor": 16}))
    with pytest.raises(ValueError, match=r"^task\.stylegan2_weights: .*generator_ema") as err:
        load_stylegan2_bank(wide, str(path), "generator_ema", field)
    assert "\n" not in str(err.value)


def test_forward_backward_and_determinism(tiny):
    g, d = tiny
    lq = torch.rand(2, 3, 8, 8) * 2 - 1
    out = g(lq)
    assert out.shape == (2, 3, 32, 32)
    assert torch.equal(out, g(lq))  # fixed noise: GLEAN is deterministic
    torch.testing.assert_close(g(lq[:1]), out[:1], rtol=0, atol=1e-6)  # per-sample modulation: no batch mixing
    (out.square().mean() + d(out).mean()).backward()
    assert g.encoder[0][0].conv_first.weight.grad is not None and g.decoder[-1][2].weight.grad is not None
    assert all(p.grad is None for p in g.generator.parameters())
    assert d.final_linear[1].bias.grad is not None
    assert d(torch.rand(8, 3, 32, 32)).shape == (8, 1)


def test_bank_samples_images():
    bank = build_arch("glean", **TINY_G).generator
    assert bank(torch.randn(3, 16)).shape == (3, 3, 32, 32)


@pytest.mark.parametrize("kwargs, match", [
    (TINY_G | {"in_size": 32}, "in_size must be smaller than out_size"),
    (TINY_G | {"in_size": 12}, "in_size must be a power of two"),
    (TINY_G | {"out_size": 48, "in_size": 16}, "out_size must be a power of two"),
    (TINY_G | {"pretrained": {"ckpt_path": "x.pth", "prefix": "generator_ema"}}, "task.stylegan2_weights"),
    (TINY_G | {"width_divisor": 3}, "width_divisor must be a positive divisor of 512"),
])
def test_bad_glean_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_arch("glean", **kwargs)


def test_bad_inputs(tiny):
    g, d = tiny
    with pytest.raises(ValueError, match=r"input must be \[N, C, 8, 8\], got \[1, 3, 16, 16\]"):
        g(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="batch size 6 must be <= or a multiple of"):
        d(torch.zeros(6, 3, 32, 32))
    with pytest.raises(ValueError, match="in_size must be a power of two"):
        build_arch("stylegan2_disc", in_size=48)
