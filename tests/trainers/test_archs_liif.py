"""``liif_edsr`` and ``liif_rdn`` against the MMEditing 0.x zoo: key maps (strict), the implicit
decoder's definition (coordinates, chunked decoding), forward/backward at tiny sizes.

Forward parity with mmedit itself is in test_arch_parity.py (tests/data/golden/archs_liif.npz,
made by tests/golden/make_arch_goldens_liif.py).
"""

import functools
import json
from pathlib import Path

import pytest
import torch

from trainers.archs import build_arch
from trainers.archs.liif_net import make_coord

KEY_DIR = Path(__file__).resolve().parents[1] / "data" / "mmedit_checkpoint_keys"
KEY_MAPS = {"liif_edsr_norm_c64b16_g1_1000k_div2k": "liif_edsr", "liif_rdn_norm_c64b16_g1_1000k_div2k": "liif_rdn"}
TINY = dict(encoder=dict(type="EDSR", mid_channels=8, num_blocks=1),
            imnet=dict(type="MLPRefiner", out_dim=3, hidden_list=[16]))


@functools.cache
def _key_map(config: str) -> dict:
    return json.loads((KEY_DIR / f"{config}.json").read_text())


@pytest.mark.parametrize("config", sorted(KEY_MAPS))
def test_zoo_key_map_matches(config):
    gen = _key_map(config)["generator"]
    with torch.device("meta"):
        net = build_arch(KEY_MAPS[config], **gen["kwargs"])
    got = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert got == {k: list(v) for k, v in gen["keys"].items()}
    assert sum(p.numel() for p in net.parameters()) == _key_map(config)["full_model_num_params"]


def test_zoo_state_loads_strictly():
    gen = _key_map("liif_edsr_norm_c64b16_g1_1000k_div2k")["generator"]
    net = build_arch("liif_edsr", **gen["kwargs"])
    net.load_state_dict({k: torch.zeros(s) for k, s in gen["keys"].items()}, strict=True)
    assert net.imnet.layers[0].in_features == 580


def test_make_coord_is_pixel_centres():
    c = make_coord((2, 4))
    assert c.shape == (8, 2)
    assert torch.allclose(c[:4, 0], torch.full((4,), -0.5))  # row 0 centre, y first
    assert torch.allclose(c[:4, 1], torch.tensor([-0.75, -0.25, 0.25, 0.75]))


def test_chunked_decoding_equals_whole():
    torch.manual_seed(0)
    net = build_arch("liif_edsr", **TINY, eval_bsize=7).eval()
    x = torch.rand(1, 3, 5, 6)
    coord = make_coord((11, 13))[None]
    cell = torch.ones_like(coord) * torch.tensor([2 / 11, 2 / 13])
    whole = net(x, coord, cell)
    chunked = net(x, coord, cell, test_mode=True)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


def test_forward_backward_tiny_rdn():
    encoder = dict(type="RDN", mid_channels=4, num_blocks=1, num_layers=1, channel_growth=4)
    net = build_arch("liif_rdn", encoder=encoder, imnet=dict(type="MLPRefiner", out_dim=3, hidden_list=[8]))
    coord = torch.rand(2, 9, 2) * 2 - 1
    out = net(torch.rand(2, 3, 4, 4), coord, torch.full_like(coord, 0.1))
    assert out.shape == (2, 9, 3)
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("bad, msg", [(dict(encoder=dict(type="RDN")), "encoder.type"),
                                      (dict(imnet=dict(type="MLP", out_dim=3, hidden_list=[4])), "imnet.type"),
                                      (dict(eval_bsize=0), "eval_bsize")])
def test_bad_arguments_name_the_field(bad, msg):
    with pytest.raises(ValueError, match=msg):
        build_arch("liif_edsr", **(TINY | bad))
