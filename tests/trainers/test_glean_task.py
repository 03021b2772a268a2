"""The glean task without Ray: [-1, 1] inside the step, [0, 1] outside, the frozen bank, the
StyleGAN2 file start, and the config's one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch.nn import functional as F

from arch_helpers import one_thread  # noqa: F401 (the module's fixture)
from trainers.archs import build_arch
from trainers.tasks.glean import GLEANConfig, GLEANTask

G = dict(in_size=8, out_size=32, style_channels=16, num_mlps=1, rrdb_channels=8, num_rrdbs=1, width_divisor=32)
D = dict(in_size=32, width_divisor=32)
pytestmark = pytest.mark.usefixtures("one_thread")
NETS = {"generator": {"name": "glean", **G}, "discriminator": {"name": "stylegan2_disc", **D}}


def _cfg(**kw) -> GLEANConfig:
    cfg = {"data": {"scale": 4, "gt_size": 32, "degradation": {"preset": "bicubic"}},
           "pixel": {"name": "mse", "weight": 1.0}, "perceptual": None,
           "gan": {"type": "vanilla", "weight": 1e-2}, "allow_random_init": True, **kw}
    return GLEANConfig.model_validate(cfg)


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    nets = {"generator": build_arch("glean", **G), "discriminator": build_arch("stylegan2_disc", **D)}
    opts = {r: torch.optim.Adam([p for p in n.parameters() if p.requires_grad], lr=1e-3) for r, n in nets.items()}
    batch = {"lq": torch.rand(2, 3, 8, 8), "gt": torch.rand(2, 3, 32, 32)}
    return nets, opts, batch


def test_step_trains_on_signed_images_and_keeps_the_bank():
    task = GLEANTask(_cfg())
    nets, opts, batch = _setup()
    g = nets["generator"]
    with torch.no_grad():
        want_pix = F.mse_loss(g(batch["lq"] * 2 - 1), batch["gt"] * 2 - 1)
    bank = {k: v.clone() for k, v in g.generator.state_dict().items()}
    enc = [p.clone() for p in g.encoder.parameters()]
    logs = task.train_step(nets, opts, batch, step=0)
    torch.testing.assert_close(logs["loss/g_pix"], want_pix)
    assert {"loss/g_gan", "loss/d_real", "loss/d_fake"} <= set(logs)
    assert all(torch.equal(v, g.generator.state_dict()[k]) for k, v in bank.items())
    assert any(not torch.equal(a, b) for a, b in zip(enc, g.encoder.parameters()))
    assert batch["lq"].min() >= 0  # the caller's batch is untouched


def test_predict_returns_zero_one_images_and_checks_the_size():
    task = GLEANTask(_cfg())
    nets, _, batch = _setup()
    pred = task.predict(nets, batch)
    with torch.no_grad():
        torch.testing.assert_close(pred, (nets["generator"](batch["lq"] * 2 - 1) + 1) / 2)
    with pytest.raises(ValueError, match=r"^glean: LQ must be 8x8 px \(gt_size / scale\), got 16x16$"):
        task.predict(nets, {"lq": torch.rand(1, 3, 16, 16)})
    assert set(task.score(pred[:1], batch)) == {"psnr", "ssim"}
    assert task.preview(pred, batch).shape == (32, 96, 3)  # LQ | output | GT


def test_infer_batch_area_resizes_to_in_size():
    task = GLEANTask(_cfg())
    image = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    assert task.infer_batch({"image": image})["lq"].shape == (1, 3, 8, 8)
    small = image[:8, :8]
    torch.testing.assert_close(task.infer_batch({"image": small})["lq"][0].permute(1, 2, 0) * 255,
                               torch.from_numpy(small).float())


def test_init_net_loads_the_stylegan2_file(tmp_path):
    torch.manual_seed(5)
    src_g, src_d = build_arch("glean", **G), build_arch("stylegan2_disc", **D)
    state = {f"generator_ema.{k}": v for k, v in src_g.generator.state_dict().items()}
    state |= {f"discriminator.{k}": v for k, v in src_d.state_dict().items()}
    path = tmp_path / "sg2.pth"
    torch.save({"state_dict": state}, path)
    task = GLEANTask(_cfg(stylegan2_weights=str(path), allow_random_init=False))
    GLEANTask.preflight(task.cfg)
    nets, _, _ = _setup(seed=1)
    for role, net in nets.items():
        task.init_net(role, net)
    assert all(torch.equal(v, nets["generator"].generator.state_dict()[k])
               for k, v in src_g.generator.state_dict().items())
    assert all(torch.equal(v, nets["discriminator"].state_dict()[k]) for k, v in src_d.state_dict().items())
    with pytest.raises(ValueError, match=r"^task\.stylegan2_weights: .*missing\.pth not found"):
        GLEANTask.preflight(_cfg(stylegan2_weights=str(tmp_path / "missing.pth")))


@pytest.mark.parametrize("kw, match", [
    ({"allow_random_init": False}, "stylegan2_weights: required"),
    ({"eval": {"tile": 64}}, "tiling does not apply"),
    ({"data": {"scale": 32, "gt_size": 64}}, "less than or equal to 16"),
])
def test_bad_configs_name_the_field(kw, match):
    with pytest.raises(ValidationError, match=match):
        _cfg(**kw)


def test_check_nets_matches_sizes():
    cfg = _cfg()
    GLEANTask.check_nets(cfg, NETS)
    with pytest.raises(ValueError, match=r"nets\.generator: in_size/out_size 16/32 do not match"):
        GLEANTask.check_nets(cfg, NETS | {"generator": NETS["generator"] | {"in_size": 16}})
    with pytest.raises(ValueError, match=r"nets\.discriminator\.in_size: is 64, the GT is 32 px"):
        GLEANTask.check_nets(cfg, NETS | {"discriminator": NETS["discriminator"] | {"in_size": 64}})
    with pytest.raises(ValueError, match="trains a glean network"):
        GLEANTask.check_nets(cfg, NETS | {"generator": {"name": "rrdbnet"}})


def test_sampler_trains_on_the_preset_and_validates_on_bicubic():
    from degradations.presets import degrade
    from preprocessing.schema import decode_image, encode_png
    from trainers.samplers.sr import to_float, to_uint8

    task_cfg = _cfg(data={"scale": 8, "gt_size": 64, "degradation": {"preset": "glean"}})
    sampler = GLEANTask.sampler(task_cfg)
    gt = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    members = {"gt.png": encode_png(gt), "__key__": "face"}
    train = sampler.train(members, np.random.default_rng(1))
    assert train["lq"].shape == (8, 8, 3) and train["gt"].shape == (64, 64, 3)
    val = sampler.val(members, np.random.default_rng(1))
    want = to_uint8(degrade("bicubic", to_float(decode_image(members["gt.png"])), scale=8, rng=np.random.default_rng(0)))
    np.testing.assert_array_equal(val["lq"], want)
