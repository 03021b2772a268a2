"""Parity of trainers.losses with MMEditing 0.16.1, and the VGG weight-loading rules.

Values come from ``tests/data/golden/losses.npz`` (made by
``tests/golden/make_loss_goldens.py`` with mmedit installed; this module does not
need it). VGG weights are not stored: :func:`vgg_test_state` recomputes them (the
golden script holds a copy and records a fingerprint this module checks).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trainers.losses import (
    GANLoss,
    PerceptualLoss,
    disc_shift_loss,
    gradient_penalty_loss,
    load_vgg_features,
    pixel_loss,
    ragan_discriminator_losses,
    ragan_generator_loss,
)
from trainers.losses.pixel import charbonnier_loss

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "losses.npz"
RTOL, ATOL = 1e-5, 1e-7
FIELD = "task.perceptual.vgg_weights"

# --- the golden script holds a copy of these two helpers (keep the two identical) ---
VGG_CHANNELS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def vgg_test_state(vgg_type: str, seed: int = 2024) -> dict[str, torch.Tensor]:
    """Deterministic torchvision-format ``features.*`` weights: He-scaled normals, drawn in layer order."""
    gen = torch.Generator().manual_seed(seed)
    state, index, cin = {}, 0, 3
    for v in VGG_CHANNELS[vgg_type]:
        if v == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(v, cin, 3, 3, generator=gen) * (2.0 / (9 * cin)) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(v, generator=gen) * 0.01
        index, cin = index + 2, v
    return state


def vgg_fingerprint(state: dict[str, torch.Tensor]) -> np.ndarray:
    return np.array([state[k].double().sum().item() for k in state] + [state[k].double().abs().sum().item() for k in state])
# --- end of the copied helpers ---


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


def t(golden, key: str) -> torch.Tensor:
    return torch.from_numpy(golden[key])


def close(actual, expected, rtol=RTOL, atol=ATOL) -> None:
    actual = actual.detach().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- pixel

@pytest.mark.parametrize("name", ["l1", "mse", "charbonnier"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("mask", ["nomask", "mask1", "mask3"])
@pytest.mark.parametrize("sample_wise", [False, True])
def test_pixel_loss_matches_mmedit(golden, name, reduction, mask, sample_wise):
    weight = None if mask == "nomask" else t(golden, f"in.pix.{mask}")
    got = pixel_loss(name, t(golden, "in.pix.pred"), t(golden, "in.pix.target"), weight,
                     loss_weight=0.7, reduction=reduction, sample_wise=sample_wise)
    close(got, golden[f"pix.{name}.{reduction}.{mask}.sw{int(sample_wise)}"])


def test_charbonnier_eps_matches_mmedit(golden):
    got = 0.7 * charbonnier_loss(t(golden, "in.pix.pred"), t(golden, "in.pix.target"), t(golden, "in.pix.mask1"),
                                 eps=1e-3)
    close(got, golden["pix.charbonnier_eps"])


def test_pixel_loss_rejects_unknown_names_and_shapes():
    a = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match="unknown loss"):
        pixel_loss("huber", a, a)
    with pytest.raises(ValueError, match="unknown reduction"):
        pixel_loss("l1", a, a, reduction="avg")
    with pytest.raises(ValueError, match="does not fit"):
        pixel_loss("l1", a, a, torch.ones(1, 2, 2, 2))


# ---------------------------------------------------------------- GAN

GAN_LABELS = {"default": dict(), "custom": dict(real_label_val=0.9, fake_label_val=0.1, loss_weight=0.3)}
GAN_CASES = [("vanilla", ""), ("lsgan", ""), ("wgan", ""), ("hinge", ""), ("smgan", "same"), ("smgan", "resize")]


@pytest.mark.parametrize("gan_type, mask", GAN_CASES, ids=[f"{g}{'_' + m if m else ''}" for g, m in GAN_CASES])
@pytest.mark.parametrize("labels", list(GAN_LABELS))
@pytest.mark.parametrize("real", [True, False], ids=["real", "fake"])
@pytest.mark.parametrize("disc", [True, False], ids=["disc", "gen"])
def test_gan_loss_matches_mmedit(golden, gan_type, mask, labels, real, disc):
    loss = GANLoss(gan_type, **GAN_LABELS[labels])
    m = t(golden, {"same": "in.gan.mask_same", "resize": "in.gan.mask_big"}[mask]) if mask else None
    got = loss(t(golden, "in.gan.pred"), target_is_real=real, is_disc=disc, mask=m)
    case = f"gan.{gan_type}{'_' + mask if mask else ''}.{labels}"
    close(got, golden[f"{case}.{'real' if real else 'fake'}.{'disc' if disc else 'gen'}"])


def test_disc_shift_matches_mmedit(golden):
    close(disc_shift_loss(t(golden, "in.gan.pred")) * 0.1, golden["shift"])


def test_gan_loss_rejects_unknown_type_and_smgan_without_mask():
    with pytest.raises(ValueError, match="unknown gan_type"):
        GANLoss("ragan")
    with pytest.raises(ValueError, match="mask"):
        GANLoss("smgan")(torch.zeros(1, 1, 2, 2), True)


def _tiny_discriminator(golden) -> nn.Module:
    disc = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, padding=1))
    disc.load_state_dict({k[len("gp.disc."):]: t(golden, k) for k in golden if k.startswith("gp.disc.")})
    return disc


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_gradient_penalty_matches_mmedit(golden, masked):
    disc = _tiny_discriminator(golden)
    torch.manual_seed(5)  # as the golden: interpolation weights from torch's global generator
    penalty = gradient_penalty_loss(disc, t(golden, "in.gp.real"), t(golden, "in.gp.fake"),
                                    mask=t(golden, "in.gp.mask") if masked else None)
    penalty.backward()
    name = "mask" if masked else "nomask"
    close(penalty, golden[f"gp.{name}"])
    for k, p in disc.named_parameters():
        close(p.grad if p.grad is not None else torch.zeros_like(p), golden[f"gp.{name}.grad.{k}"])


@pytest.mark.parametrize("gan_type, loss_weight", [("vanilla", 5e-3), ("lsgan", 0.5)])
def test_ragan_terms_match_mmedit_esrgan_train_step(golden, gan_type, loss_weight):
    """Values and the gradients they leave on G and D, against ESRGAN.train_step itself."""
    key = f"ragan.{gan_type}"
    g, d = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 1, 3, padding=1)
    g.load_state_dict({k: t(golden, f"{key}.g.{k}") for k in ("weight", "bias")})
    d.load_state_dict({k: t(golden, f"{key}.d.{k}") for k in ("weight", "bias")})
    gan = GANLoss(gan_type, loss_weight=loss_weight)
    lq, gt = t(golden, "in.ragan.lq"), t(golden, "in.ragan.gt")

    fake = g(lq)
    d.requires_grad_(False)
    loss_g = ragan_generator_loss(gan, d(gt), d(fake))
    loss_g.backward()
    d.requires_grad_(True)
    loss_d_real, loss_d_fake = ragan_discriminator_losses(gan, d(gt), d(fake.detach()))
    (loss_d_real + loss_d_fake).backward()

    close(loss_g, golden[f"{key}.loss_gan"])
    close(loss_d_real, golden[f"{key}.loss_d_real"])
    close(loss_d_fake, golden[f"{key}.loss_d_fake"])
    for net, prefix in ((g, "g"), (d, "d")):
        for k, p in net.named_parameters():
            close(p.grad, golden[f"{key}.{prefix}.grad.{k}"])


# ---------------------------------------------------------------- perceptual

# The golden script's cases; their PerceptualLoss arguments are read from the golden.
PERCEP_CASES = ["esrgan", "realesrgan", "aotgan", "pconv", "glean", "ttsr", "no_input_norm", "style_same_dict",
                "percep_off", "style_mse_other"]


def test_golden_has_exactly_these_perceptual_cases(golden):
    assert {k.split(".")[1] for k in golden if k.startswith("percep.")} == set(PERCEP_CASES)


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory, golden):
    """The deterministic VGG weights as torchvision-format files, checked against the golden's fingerprint."""
    folder = tmp_path_factory.mktemp("vgg")
    files = {}
    for vgg_type in ("vgg16", "vgg19"):
        state = vgg_test_state(vgg_type)
        np.testing.assert_allclose(vgg_fingerprint(state), golden[f"vgg.{vgg_type}.fingerprint"], rtol=1e-12)
        state["classifier.0.weight"] = torch.zeros(2, 2)  # a torchvision file has a classifier: ignored
        files[vgg_type] = folder / f"{vgg_type}_test.pth"
        torch.save(state, files[vgg_type])
    return files


@pytest.mark.parametrize("case", PERCEP_CASES)
def test_perceptual_loss_matches_mmedit(golden, vgg_files, case):
    kwargs, signed = json.loads(str(golden[f"percep.{case}.kwargs"])), bool(golden[f"percep.{case}.signed"])
    loss = PerceptualLoss(**kwargs, vgg_weights=vgg_files[kwargs["vgg_type"]])
    x01, gt01 = t(golden, "in.percep.x"), t(golden, "in.percep.gt")
    x = (x01 * 2 - 1 if signed else x01).clone().requires_grad_(True)
    percep, style = loss(x, gt01 * 2 - 1 if signed else gt01)
    for term, value in (("percep", percep), ("style", style)):
        want = golden[f"percep.{case}.{term}"]
        if np.isnan(want):
            assert value is None, f"{term} should be None when its weight is 0"
        else:
            close(value, want, atol=0)
    if f"percep.{case}.grad" in golden:
        (grad,) = torch.autograd.grad(sum(v for v in (percep, style) if v is not None), x)
        want = golden[f"percep.{case}.grad"]
        # mmedit runs a second VGG for style layers, so its input gradient is summed in another
        # order (values are bit-equal): elements near zero get an absolute bound at the grad's scale
        close(grad, want, atol=RTOL * np.abs(want).max())


def test_perceptual_layer_is_taken_before_the_following_relu():
    """'2' in VGG19 is conv1_2's raw output (it has negative values), '3' its ReLU."""
    vgg = load_vgg_features("vgg19", 4, allow_random_init=True, field=FIELD)
    feats = vgg(torch.rand(1, 3, 8, 8), {2, 3})
    assert feats[2].min() < 0 and torch.equal(feats[3], feats[2].clamp(min=0))


def test_vgg_is_frozen_and_stays_in_eval_mode():
    vgg = load_vgg_features("vgg16", 5, allow_random_init=True, field=FIELD)
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    assert list(vgg.state_dict())[:2] == ["features.0.weight", "features.0.bias"]


# ---------------------------------------------------------------- weight files

def _tiny_vgg16_file(folder: Path, name: str | None = None) -> tuple[Path, str]:
    """A torchvision-format file holding VGG16's first two convs (enough for 4 layers), named with its hash."""
    state = {k: v for k, v in vgg_test_state("vgg16").items() if k.split(".")[1] in ("0", "2")}
    state["classifier.6.bias"] = torch.zeros(3)
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / (name or f"vgg16-{digest[:8]}.pth")
    tmp.rename(path)
    return path, digest


def test_weights_load_and_match_the_file(tmp_path):
    path, digest = _tiny_vgg16_file(tmp_path)
    vgg = load_vgg_features("vgg16", 4, path, field=FIELD)  # hash suffix in the name: checked
    assert torch.equal(vgg.features[2].weight, vgg_test_state("vgg16")["features.2.weight"])
    load_vgg_features("vgg16", 4, str(path), field=FIELD, sha256=digest.upper())


def test_sha256_mismatch_is_one_line_naming_the_field(tmp_path):
    path, digest = _tiny_vgg16_file(tmp_path, name="vgg16-deadbeef.pth")
    with pytest.raises(ValueError, match=f"^{FIELD}: vgg16-deadbeef.pth has sha256 {digest}") as err:
        load_vgg_features("vgg16", 4, path, field=FIELD)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="expected 00"):
        load_vgg_features("vgg16", 4, path, field=FIELD, sha256="00" * 32)


def test_file_missing_layers_is_one_line(tmp_path):
    path, _ = _tiny_vgg16_file(tmp_path)
    with pytest.raises(ValueError, match=f"^{FIELD}: .*missing.*features.5.weight") as err:
        load_vgg_features("vgg16", 6, path, field=FIELD)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("vgg_type, url", [("vgg19", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
                                           ("vgg16", "https://download.pytorch.org/models/vgg16-397923af.pth")])
def test_missing_weights_are_one_line_naming_field_and_download(tmp_path, vgg_type, url):
    for weights in (None, tmp_path / "nowhere" / "vgg.pth"):
        with pytest.raises(ValueError) as err:
            load_vgg_features(vgg_type, 5, weights, field="task.perceptual.vgg_weights")
        message = str(err.value)
        assert "\n" not in message and message.startswith("task.perceptual.vgg_weights:") and url in message


def test_random_init_needs_the_explicit_flag():
    with pytest.raises(ValueError, match="not set"):
        PerceptualLoss({"4": 1.0}, vgg_type="vgg16")
    percep, style = PerceptualLoss({"4": 1.0}, vgg_type="vgg16", allow_random_init=True)(
        torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    assert percep.ndim == 0 and style.ndim == 0


def test_weights_load_from_s3(tmp_path, s3_bucket):
    import boto3

    path, _ = _tiny_vgg16_file(tmp_path)
    boto3.client("s3").upload_file(str(path), s3_bucket, f"models/{path.name}")
    vgg = load_vgg_features("vgg16", 4, f"s3://{s3_bucket}/models/{path.name}", field=FIELD)
    assert torch.equal(vgg.features[0].bias, vgg_test_state("vgg16")["features.0.bias"])


def test_weights_load_from_an_explicit_http_url(tmp_path):
    import functools
    import http.server
    import threading

    path, _ = _tiny_vgg16_file(tmp_path)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            vgg = load_vgg_features("vgg16", 4, f"{base}/{path.name}", field=FIELD)
            with pytest.raises(ValueError, match=f"^{FIELD}: cannot read {base}/vgg16-00000000.pth: HTTP Error 404"):
                load_vgg_features("vgg16", 4, f"{base}/vgg16-00000000.pth", field=FIELD)
        finally:
            server.shutdown()
    assert torch.equal(vgg.features[2].bias, vgg_test_state("vgg16")["features.2.bias"])
