"""GLEANStyleGANv2: Chan et al., "GLEAN: Generative Latent Bank for Large-Factor Image
Super-Resolution", CVPR 2021 -- an RRDB encoder, a frozen pretrained StyleGAN2 generator as latent
bank, and a decoder fusing both.

Zoo configs: ``glean_in128out1024_4x2_300k_ffhq_celebahq`` (x8, 128 -> 1024, FFHQ bank),
``glean_ffhq_16x`` (64 -> 1024, FFHQ bank), ``glean_cat_8x`` (32 -> 256) and ``glean_cat_16x``
(16 -> 256), both with the StyleGAN2 LSUN-cat 256 px bank (same architecture, 14 layers).

What the reference does that one might not expect:

* the bank (``generator.*``, 30.4M parameters at 1024 px) is frozen (``requires_grad=False``) but
  saved in every GLEAN checkpoint, its fixed noise maps ``generator.injected_noise_<i>`` included:
  GLEAN always feeds those buffers, never fresh noise, so the network is deterministic;
* the encoder's last block (4x4) is a linear layer to ``(2 log2(out) - 2) * style_channels``
  values, read as one latent per bank layer (W+ space, the mapping network is unused);
* encoder features are concatenated with the bank's features and its RGB skip at every
  resolution up to ``in_size`` (``fusion_out``, ``fusion_skip``); the bank's features above
  ``in_size`` go to the decoder, whose pixel-shuffle stages end in a 64-channel 3x3 conv pair;
* inputs and outputs are in [-1, 1] (the zoo normalises with mean = std = 0.5);
* ``forward`` requires exactly ``in_size`` x ``in_size`` inputs.

The bank is loaded by :func:`load_stylegan2_bank` from mmgen's published StyleGAN2 file (a
``state_dict`` with ``generator_ema.*``/``discriminator.*``); the task names it in its config.
``width_divisor`` (restoray) divides the StyleGAN2 channel table for tiny tests; 1 is the zoo.
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor, nn

from trainers.archs.blocks import PixelShufflePack
from trainers.archs.rrdbnet import RRDB
from trainers.archs.stylegan2_blocks import StyleGANv2Generator
from trainers.checkpoint_io import CheckpointError, load_checkpoint_file, load_strict


class RRDBFeatureExtractor(nn.Module):
    """ESRGAN without its upsampler: ``conv_first``, RRDB trunk, ``conv_body``, trunk residual."""

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, num_blocks: int = 23,
                 growth_channels: int = 32):
        super().__init__()
        self.conv_first = nn.Conv2d(in_channels, mid_channels, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(mid_channels, growth_channels) for _ in range(num_blocks)])
        self.conv_body = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv_first(x)
        return feat + self.conv_body(self.body(feat))


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(negative_slope=0.2, inplace=True)


class GLEANStyleGANv2(nn.Module):
    """Args: mmedit's (``in_size`` < ``out_size``, powers of two; StyleGAN2 arguments passed to the
    bank), except that ``pretrained`` must be None (the bank file is the task's
    ``stylegan2_weights``) and ``bgr2rgb`` False; ``default_style_mode``, ``eval_style_mode`` and
    ``mix_prob`` are accepted and unused (they only matter to the bank's own sampling).
    ``width_divisor``: restoray's, see the module docstring."""

    def __init__(self, in_size: int, out_size: int, img_channels: int = 3, rrdb_channels: int = 64,
                 num_rrdbs: int = 23, style_channels: int = 512, num_mlps: int = 8, channel_multiplier: int = 2,
                 blur_kernel=(1, 3, 3, 1), lr_mlp: float = 0.01, default_style_mode: str = "mix",
                 eval_style_mode: str = "single", mix_prob: float = 0.9, pretrained: None = None,
                 bgr2rgb: bool = False, width_divisor: int = 1):
        super().__init__()
        if in_size >= out_size:
            raise ValueError(f"in_size must be smaller than out_size, got {in_size} and {out_size}")
        if in_size < 4 or 2 ** int(math.log2(in_size)) != in_size:
            raise ValueError(f"in_size must be a power of two >= 4, got {in_size}")
        if pretrained is not None or bgr2rgb:
            raise ValueError("glean: pretrained/bgr2rgb are not taken here; the StyleGAN2 bank file is "
                             "task.stylegan2_weights")
        self.generator = StyleGANv2Generator(out_size, style_channels, num_mlps, channel_multiplier, blur_kernel,
                                             lr_mlp, width_divisor)
        self.generator.requires_grad_(False)
        self.in_size, self.out_size, self.style_channels = in_size, out_size, style_channels
        ch = self.generator.channels
        num_styles = int(math.log2(out_size)) * 2 - 2
        encoder_res = [2 ** i for i in range(int(math.log2(in_size)), 1, -1)]
        self.encoder = nn.ModuleList([nn.Sequential(
            RRDBFeatureExtractor(img_channels, rrdb_channels, num_blocks=num_rrdbs),
            nn.Conv2d(rrdb_channels, ch[in_size], 3, 1, 1), _lrelu())])
        for res in encoder_res:
            cin = ch[res]
            if res > 4:
                cout = ch[res // 2]
                block = nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), _lrelu(), nn.Conv2d(cout, cout, 3, 1, 1), _lrelu())
            else:
                block = nn.Sequential(nn.Conv2d(cin, cin, 3, 1, 1), _lrelu(), nn.Flatten(),
                                      nn.Linear(16 * cin, num_styles * style_channels))
            self.encoder.append(block)
        self.fusion_out, self.fusion_skip = nn.ModuleList(), nn.ModuleList()
        for res in encoder_res[::-1]:
            self.fusion_out.append(nn.Conv2d(2 * ch[res], ch[res], 3, 1, 1))
            self.fusion_skip.append(nn.Conv2d(ch[res] + 3, 3, 3, 1, 1))
        self.decoder = nn.ModuleList()
        for res in (2 ** i for i in range(int(math.log2(in_size)), int(math.log2(out_size)) + 1)):
            cin = ch[res] if res == in_size else 2 * ch[res]
            if res < out_size:
                self.decoder.append(PixelShufflePack(cin, ch[res * 2], 2, upsample_kernel=3))
            else:
                self.decoder.append(nn.Sequential(nn.Conv2d(cin, 64, 3, 1, 1), _lrelu(),
                                                  nn.Conv2d(64, img_channels, 3, 1, 1)))

    def forward(self, lq: Tensor) -> Tensor:
        """SR image [N, C, out_size, out_size] for ``lq`` [N, C, in_size, in_size], both in [-1, 1]."""
        if lq.ndim != 4 or lq.shape[-2:] != (self.in_size, self.in_size):
            raise ValueError(f"glean: input must be [N, C, {self.in_size}, {self.in_size}], got {list(lq.shape)}")
        feats = []
        feat = lq
        for block in self.encoder:
            feat = block(feat)
            feats.append(feat)
        feats = feats[::-1]
        latent = feats[0].view(lq.shape[0], -1, self.style_channels)
        enc = feats[1:]  # 4x4 ... in_size
        bank = self.generator
        noise = bank.injected_noise()
        out = bank.conv1(bank.constant_input(latent), latent[:, 0], noise[0])
        skip = bank.to_rgb1(out, latent[:, 1])
        bank_feats = []
        for j, to_rgb in enumerate(bank.to_rgbs):
            i = 2 * j + 1
            if out.shape[2] <= self.in_size:
                e = enc[j]
                out = self.fusion_out[j](torch.cat([out, e], 1))
                skip = self.fusion_skip[j](torch.cat([skip, e], 1))
            out = bank.convs[2 * j](out, latent[:, i], noise[i])
            out = bank.convs[2 * j + 1](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
            if out.shape[2] > self.in_size:
                bank_feats.append(out)
        hr = enc[-1]
        for i, block in enumerate(self.decoder):
            if i > 0:
                hr = torch.cat([hr, bank_feats[i - 1]], 1)
            hr = block(hr)
        return hr


def read_stylegan2_state(uri: str | os.PathLike, prefix: str, field: str) -> dict[str, Tensor]:
    """The ``prefix.*`` tensors (prefix stripped) of an mmgen StyleGAN2 file (or a bare state dict).

    Raises:
        ValueError: One line naming ``field`` if the file cannot be read or has no ``prefix.*`` keys.
    """
    try:
        ckpt = load_checkpoint_file(uri)
    except CheckpointError as err:
        raise ValueError(f"{field}: {err}") from err
    state = ckpt.get("state_dict", ckpt)
    head = prefix + "."
    out = {k[len(head):]: v for k, v in state.items() if isinstance(k, str) and k.startswith(head)}
    if not out:
        raise ValueError(f"{field}: {os.fspath(uri)} has no '{head}*' tensors (an mmgen StyleGAN2 file has "
                         "generator_ema.*, generator.* and discriminator.*)")
    return out


def load_stylegan2_bank(net: nn.Module, uri: str | os.PathLike, prefix: str, field: str) -> None:
    """Loads the StyleGAN2 file's ``prefix`` part strictly: into ``net.generator`` for a GLEAN
    network (the bank), into ``net`` itself otherwise (the discriminator).

    Raises:
        ValueError: One line naming ``field`` for an unreadable file or mismatched keys/shapes.
    """
    target = net.generator if isinstance(net, GLEANStyleGANv2) else net
    state = read_stylegan2_state(uri, prefix, field)
    try:
        load_strict(target, state)
    except CheckpointError as err:
        raise ValueError(f"{field}: {os.fspath(uri)} ({prefix}): {str(err).splitlines()[0]}") from err
