"""Write ``tests/data/golden/losses.npz``: MMEditing 0.16.1's loss values on seeded inputs.

Run from the repository root with the reference interpreter (see ``mmedit_shim.py``)::

    /tmp/mmedit-venv/bin/python tests/golden/make_loss_goldens.py

What it stores (keys are ``group.case[.what]``):

* ``in.*``: the seeded inputs (images, masks, discriminator outputs).
* ``pix.<l1|mse|charbonnier>.<none|mean|sum>.<nomask|mask1|mask3>.<sw0|sw1>``: mmedit's
  ``L1Loss``/``MSELoss``/``CharbonnierLoss(loss_weight=0.7)``; ``pix.charbonnier_eps``.
* ``gan.<type>.<labels>.<real|fake>.<disc|gen>``: ``GANLoss`` for every type; ``smgan``
  with a mask of the predictions' size (``same``) and twice it (``resize``).
* ``gp.*``: ``gradient_penalty_loss`` with a tiny seeded discriminator (its weights under
  ``gp.disc.<key>``), with and without a mask, and the discriminator's weight gradients.
* ``shift``: ``DiscShiftLoss()`` (default weight 0.1).
* ``ragan.<gan>.*``: ESRGAN's ``train_step`` run on a one-conv generator and
  discriminator (weights stored): the logged ``loss_gan``, ``loss_d_real``,
  ``loss_d_fake`` and the parameter gradients it leaves behind.
* ``percep.<case>.<percep|style|grad>``: ``PerceptualLoss`` (its arguments as JSON in
  ``percep.<case>.kwargs``; ``.signed``: inputs in [-1, 1]) on VGG weights made by
  :func:`vgg_test_state` (a copy of the test module's helper: this interpreter has no
  pytest to import it with); ``vgg.<type>.fingerprint`` lets the test prove its copy
  makes the same weights.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import types

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
import mmedit_shim  # noqa: E402

mmedit_shim.install()

from mmedit.models.losses import (  # noqa: E402
    CharbonnierLoss,
    DiscShiftLoss,
    GANLoss,
    L1Loss,
    MSELoss,
    PerceptualLoss,
)
from mmedit.models.losses.gan_loss import gradient_penalty_loss  # noqa: E402
from mmedit.models.restorers.esrgan import ESRGAN  # noqa: E402

OUT = "tests/data/golden/losses.npz"

# --- copy of tests/trainers/test_losses.py::vgg_test_state (keep the two identical) ---
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
# --- end of copy ---


def pixel_goldens(out: dict) -> None:
    g = torch.Generator().manual_seed(1)
    pred, target = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    mask1 = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    mask1[1, :, :4] = 0  # a smaller area for sample 1, so sample_wise differs from pixel-wise
    mask3 = torch.rand(2, 3, 8, 8, generator=g)
    out.update({"in.pix.pred": pred, "in.pix.target": target, "in.pix.mask1": mask1, "in.pix.mask3": mask3})
    masks = {"nomask": None, "mask1": mask1, "mask3": mask3}
    for name, cls in (("l1", L1Loss), ("mse", MSELoss), ("charbonnier", CharbonnierLoss)):
        for reduction in ("none", "mean", "sum"):
            for mask_name, mask in masks.items():
                for sw in (False, True):
                    loss = cls(loss_weight=0.7, reduction=reduction, sample_wise=sw)
                    out[f"pix.{name}.{reduction}.{mask_name}.sw{int(sw)}"] = loss(pred, target, weight=mask)
    out["pix.charbonnier_eps"] = CharbonnierLoss(loss_weight=0.7, eps=1e-3)(pred, target, weight=mask1)


GAN_LABELS = {"default": dict(), "custom": dict(real_label_val=0.9, fake_label_val=0.1, loss_weight=0.3)}


def gan_goldens(out: dict) -> None:
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(2, 1, 8, 8, generator=g) * 2
    mask_same = (torch.rand(2, 1, 8, 8, generator=g) > 0.6).float()
    mask_big = (torch.rand(2, 1, 16, 16, generator=g) > 0.6).float()
    out.update({"in.gan.pred": pred, "in.gan.mask_same": mask_same, "in.gan.mask_big": mask_big})
    for gan_type in ("vanilla", "lsgan", "wgan", "hinge", "smgan"):
        for label_name, kwargs in GAN_LABELS.items():
            loss = GANLoss(gan_type, **kwargs)
            masks = {"same": mask_same, "resize": mask_big} if gan_type == "smgan" else {"": None}
            for mask_name, mask in masks.items():
                case = f"gan.{gan_type}{'_' + mask_name if mask_name else ''}.{label_name}"
                for real in (True, False):
                    for disc in (True, False):
                        key = f"{case}.{'real' if real else 'fake'}.{'disc' if disc else 'gen'}"
                        out[key] = loss(pred, target_is_real=real, is_disc=disc, mask=mask)
    out["shift"] = DiscShiftLoss()(pred)


def tiny_discriminator() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, padding=1))


def gp_goldens(out: dict) -> None:
    disc = tiny_discriminator()
    out.update({f"gp.disc.{k}": v for k, v in disc.state_dict().items()})
    g = torch.Generator().manual_seed(4)
    real, fake = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    mask = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    out.update({"in.gp.real": real, "in.gp.fake": fake, "in.gp.mask": mask})
    for name, m in (("nomask", None), ("mask", mask)):
        disc.zero_grad()
        torch.manual_seed(5)  # the interpolation weights come from torch's global generator
        penalty = gradient_penalty_loss(disc, real, fake, mask=m)
        penalty.backward()
        out[f"gp.{name}"] = penalty
        # the last bias does not reach the input gradient, so it gets no gradient: stored as zeros
        out.update({f"gp.{name}.grad.{k}": torch.zeros_like(p) if p.grad is None else p.grad.clone()
                    for k, p in disc.named_parameters()})


def ragan_goldens(out: dict) -> None:
    g = torch.Generator().manual_seed(6)
    lq, gt = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    out.update({"in.ragan.lq": lq, "in.ragan.gt": gt})
    for gan_type, loss_weight in (("vanilla", 5e-3), ("lsgan", 0.5)):
        torch.manual_seed(7)
        generator, discriminator = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 1, 3, padding=1)
        key = f"ragan.{gan_type}"
        out.update({f"{key}.g.{k}": v.clone() for k, v in generator.state_dict().items()})
        out.update({f"{key}.d.{k}": v.clone() for k, v in discriminator.state_dict().items()})
        model = ESRGAN.__new__(ESRGAN)  # bypass the registry-driven __init__; set what train_step reads
        nn.Module.__init__(model)
        model.generator, model.discriminator = generator, discriminator
        model.gan_loss = GANLoss(gan_type, loss_weight=loss_weight)
        model.pixel_loss = model.perceptual_loss = None
        model.disc_steps, model.disc_init_steps, model.step_counter = 1, 0, 0
        optim = {"generator": torch.optim.SGD(generator.parameters(), lr=0.0),
                 "discriminator": torch.optim.SGD(discriminator.parameters(), lr=0.0)}
        logs = model.train_step({"lq": lq, "gt": gt}, optim)["log_vars"]
        for name in ("loss_gan", "loss_d_real", "loss_d_fake"):
            out[f"{key}.{name}"] = np.float64(logs[name])
        out.update({f"{key}.g.grad.{k}": p.grad.clone() for k, p in generator.named_parameters()})
        out.update({f"{key}.d.grad.{k}": p.grad.clone() for k, p in discriminator.named_parameters()})


# name -> (PerceptualLoss kwargs, inputs in [-1, 1]?, store the input gradient?)
PERCEP_CASES = {
    "esrgan": (dict(layer_weights={"34": 1.0}, vgg_type="vgg19", perceptual_weight=1.0, style_weight=0,
                    norm_img=False), False, True),
    "realesrgan": (dict(layer_weights={"2": 0.1, "7": 0.1, "16": 1.0, "25": 1.0, "34": 1.0}, vgg_type="vgg19",
                        perceptual_weight=1.0, style_weight=0, norm_img=False), False, False),
    "aotgan": (dict(layer_weights={"1": 1.0, "6": 1.0, "11": 1.0, "20": 1.0, "29": 1.0}, vgg_type="vgg19",
                    layer_weights_style={"8": 1.0, "17": 1.0, "26": 1.0, "31": 1.0},
                    perceptual_weight=0.1, style_weight=250), True, True),
    "pconv": (dict(layer_weights={"4": 1.0, "9": 1.0, "16": 1.0}, vgg_type="vgg16",
                   perceptual_weight=0.05, style_weight=120), True, True),
    "glean": (dict(layer_weights={"21": 1.0}, vgg_type="vgg16", perceptual_weight=1e-2, style_weight=0,
                   norm_img=True, criterion="mse"), True, False),
    "ttsr": (dict(layer_weights={"29": 1.0}, vgg_type="vgg19", perceptual_weight=1e-2, style_weight=0,
                  criterion="mse"), True, False),
    "no_input_norm": (dict(layer_weights={"3": 0.5, "12": 2.0}, vgg_type="vgg19", use_input_norm=False,
                           style_weight=2.0, norm_img=False), False, False),
    "style_same_dict": (dict(layer_weights={"4": 1.0, "9": 0.5}, layer_weights_style={"4": 1.0, "9": 0.5},
                             vgg_type="vgg16", style_weight=3.0, criterion="mse"), True, False),
    "percep_off": (dict(layer_weights={"7": 1.0}, vgg_type="vgg19", perceptual_weight=0, style_weight=1.0,
                        norm_img=False), False, False),
    "style_mse_other": (dict(layer_weights={"9": 1.0}, layer_weights_style={"4": 1.0, "23": 0.5},
                             vgg_type="vgg16", criterion="mse", use_input_norm=False), True, False),
}


def percep_goldens(out: dict, tmp: str) -> None:
    files = {}
    for vgg_type in ("vgg16", "vgg19"):
        state = vgg_test_state(vgg_type)
        out[f"vgg.{vgg_type}.fingerprint"] = vgg_fingerprint(state)
        files[vgg_type] = os.path.join(tmp, f"{vgg_type}_test.pth")
        torch.save(state, files[vgg_type])  # torchvision's layout; mmcv loads it into vgg.vgg_layers
    g = torch.Generator().manual_seed(8)
    x01, gt01 = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    out.update({"in.percep.x": x01, "in.percep.gt": gt01})
    for name, (kwargs, signed, with_grad) in PERCEP_CASES.items():
        loss = PerceptualLoss(pretrained=files[kwargs["vgg_type"]], **kwargs)
        x = (x01 * 2 - 1 if signed else x01).clone().requires_grad_(True)
        gt = gt01 * 2 - 1 if signed else gt01
        percep, style = loss(x, gt)
        out[f"percep.{name}.kwargs"] = json.dumps(kwargs, sort_keys=True)  # the test builds its loss from these
        out[f"percep.{name}.signed"] = signed
        for term, value in (("percep", percep), ("style", style)):
            out[f"percep.{name}.{term}"] = value.detach() if value is not None else np.array(np.nan)
        if with_grad:
            total = sum(t for t in (percep, style) if t is not None)
            (out[f"percep.{name}.grad"],) = torch.autograd.grad(total, x)


def main() -> None:
    torch.set_num_threads(1)  # so that the goldens do not depend on the core count of the machine
    out: dict = {}
    pixel_goldens(out)
    gan_goldens(out)
    gp_goldens(out)
    ragan_goldens(out)
    with tempfile.TemporaryDirectory() as tmp:
        percep_goldens(out, tmp)
    mmedit_shim.save_golden(OUT, **out)
    print(f"wrote {OUT}: {len(out)} arrays, {os.path.getsize(OUT) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
