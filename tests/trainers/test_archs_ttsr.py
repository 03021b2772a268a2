"""``ttsr``, ``lte`` and ``ttsr_disc`` against the MMEditing 0.x zoo: key maps of both TTSR configs
(generator, extractor, discriminator), the search/transfer step (mmedit golden and a constructed
case whose right answer is known), the torchvision VGG19 start of the LTE, and a tiny
forward/backward through the whole chain. The networks' forward passes are checked against mmedit
in test_arch_parity.py.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers.archs import build_arch, from_torchvision
from trainers.archs.ttsr import SearchTransformer

DATA = Path(__file__).resolve().parents[1] / "data"
CONFIGS = ["ttsr-rec_x4_c64b16_g1_200k_CUFED", "ttsr-gan_x4_c64b16_g1_500k_CUFED"]


def _key_map(config: str) -> dict:
    return json.loads((DATA / "mmedit_checkpoint_keys" / f"{config}.json").read_text())


def _shapes(net: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("config", CONFIGS)
def test_zoo_key_maps(config):
    """Every role of the zoo checkpoint: keys and shapes equal, parameter counts equal."""
    zoo = _key_map(config)
    gen = zoo["generator"]
    with torch.device("meta"):
        _check_roles(config, zoo, gen)


def _check_roles(config, zoo, gen):
    net = build_arch("ttsr", **gen["kwargs"])
    assert _shapes(net) == gen["keys"]
    assert sum(p.numel() for p in net.parameters()) == gen["num_params"] == 6_174_275
    lte = build_arch("lte")
    assert _shapes(lte) == zoo["other_modules"]["extractor"]["keys"]
    assert sum(p.numel() for p in lte.parameters()) == zoo["other_modules"]["extractor"]["num_params"]
    if zoo.get("discriminator"):
        disc = build_arch("ttsr_disc", **zoo["discriminator"]["kwargs"])
        assert _shapes(disc) == zoo["discriminator"]["keys"]
        assert sum(p.numel() for p in disc.parameters()) == zoo["discriminator"]["num_params"]
    else:
        assert config.startswith("ttsr-rec")


def test_search_transfer_matches_mmedit():
    with np.load(DATA / "golden" / "ttsr_search.npz") as g:
        t = {k: torch.from_numpy(g[k]).float() for k in g.files}
    soft, textures = SearchTransformer()(t["query"], t["key"], [t[f"ref.{i}"] for i in range(3)])
    torch.testing.assert_close(soft, t["soft_attention"], rtol=0, atol=1e-5)
    for i, tex in enumerate(textures):
        torch.testing.assert_close(tex, t[f"texture.{i}"], rtol=0, atol=1e-5)


def test_search_finds_the_known_patch_and_transfers_its_texture():
    """The query is the key shifted by (dy, dx) = (2, 3): every query position whose 3x3 patch lies
    inside both maps must pick key position (y + dy, x + dx) with relevance 1, and where all nine
    overlapping patches were found, the transferred texture (value = key, and a 2x value map) must
    be the value there."""
    g = torch.Generator().manual_seed(0)
    h, w, dy, dx = 9, 11, 2, 3
    key = torch.randn(1, 4, h, w, generator=g)
    query = torch.zeros_like(key)
    query[..., : h - dy, : w - dx] = key[..., dy:, dx:]
    value2 = torch.randn(1, 2, 2 * h, 2 * w, generator=g)
    soft, (tex1, tex2) = SearchTransformer()(query, key, [key, value2])
    index, _ = SearchTransformer.search(query, key)
    ys, xs = np.mgrid[1 : h - dy - 1, 1 : w - dx - 1]
    want = torch.from_numpy((ys + dy) * w + (xs + dx))
    assert torch.equal(index[0].view(h, w)[1 : h - dy - 1, 1 : w - dx - 1], want)
    torch.testing.assert_close(soft[0, 0, 1 : h - dy - 1, 1 : w - dx - 1], torch.ones(want.shape))
    inner = (slice(2, h - dy - 2), slice(2, w - dx - 2))  # all nine neighbours found
    torch.testing.assert_close(tex1[0, :, inner[0], inner[1]],
                               key[0, :, inner[0].start + dy : inner[0].stop + dy, inner[1].start + dx : inner[1].stop + dx])
    y0, y1, x0, x1 = 2 * inner[0].start, 2 * inner[0].stop, 2 * inner[1].start, 2 * inner[1].stop
    torch.testing.assert_close(tex2[0, :, y0:y1, x0:x1], value2[0, :, y0 + 2 * dy : y1 + 2 * dy, x0 + 2 * dx : x1 + 2 * dx])


def test_lte_starts_from_torchvision_vgg19():
    vgg = {f"features.{i}.weight": torch.randn(c, cin, 3, 3) for i, cin, c in
           [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (28, 512, 512)]}
    vgg |= {k.replace("weight", "bias"): torch.randn(v.shape[0]) for k, v in list(vgg.items())}
    state = from_torchvision("lte", vgg)
    assert set(state) == {k for k in build_arch("lte").state_dict() if not k.startswith("img_normalize")}
    assert torch.equal(state["slice3.10.weight"], vgg["features.10.weight"])
    with pytest.raises(ValueError, match="not a torchvision VGG19"):
        from_torchvision("lte", {"features.0.weight": torch.zeros(64, 3, 3, 3)})


def test_tiny_chain_forward_backward():
    """LR 4x4 -> SR 16x16 through LTE, search/transfer and a narrow TTSRNet; gradients reach both
    the generator and the LTE (through the textures), none the frozen normalisation."""
    gen = build_arch("ttsr", mid_channels=8, texture_channels=64, num_blocks=[1, 1, 1, 1])
    lte = build_arch("lte")
    lq, ref = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 16, 16)
    lq_up = torch.nn.functional.interpolate(lq, scale_factor=4, mode="bicubic")
    soft, textures = SearchTransformer()(lte(lq_up)[0], lte(ref)[0], lte(ref))
    out = gen(lq * 2 - 1, soft, textures)
    assert out.shape == (1, 3, 16, 16) and out.abs().max() <= 1
    out.mean().backward()
    assert gen.conv_first1.weight.grad.abs().sum() > 0
    assert lte.slice1[0].weight.grad is not None and lte.img_normalize.weight.grad is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_blocks"):
        build_arch("ttsr", num_blocks=[1, 1])
    with pytest.raises(ValueError, match="in_size"):
        build_arch("ttsr_disc", in_size=100)
    with pytest.raises(ValueError, match="input is 64x64"):
        build_arch("ttsr_disc", in_size=32)(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("criterion", ["mse", "l1"])
@pytest.mark.parametrize("use_attention", [True, False])
def test_transferal_perceptual_loss_matches_mmedit(criterion, use_attention):
    from trainers.losses.transferal import transferal_perceptual_loss

    with np.load(DATA / "golden" / "ttsr_search.npz") as g:
        t = {k: torch.from_numpy(g[k]).float() for k in g.files}
    got = transferal_perceptual_loss([t[f"map.{i}"] for i in range(3)], t["soft_attention"],
                                     [t[f"texture.{i}"] for i in range(3)], 0.3, use_attention, criterion)
    torch.testing.assert_close(got, t[f"transferal/{criterion}_{int(use_attention)}"], rtol=1e-5, atol=0)
