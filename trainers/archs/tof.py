"""TOFlow for video super-resolution: seven pre-upsampled frames -> the centre frame, sharpened.

Paper: Xue, Chen, Wu, Wei & Freeman, "Video Enhancement with Task-Oriented Flow", IJCV 2019
(arXiv 1711.09078). Zoo config: ``tof_x4_vimeo90k_official`` (MMEditing 0.x's ``TOFlow``
backbone inside its ``EDVR`` restorer, ``adapt_official_weights=True``). The zoo ships only the
authors' weights translated to PyTorch and no training schedule: its config tests on Vid4
``BIx4up_direct`` (LR frames already bicubic-upsampled x4), 7-frame windows padded at the clip
ends with ``reflection_circle``, RGB PSNR/SSIM with no crop (24.4377 / 0.7433). Its loss line
(Charbonnier, ``reduction="sum"``) is only used by a fine-tuning run.

Conventions, as MMEditing's:

* input ``[N, 7, 3, H, W]``: RGB in [0, 1], every frame already at the output size (bicubic
  x4 of the LR frames; the network does not upsample), H and W multiples of 16 (the flow
  pyramid needs it; mmedit crashes otherwise, the port raises ValueError); output ``[N, 3, H, W]``,
  the centre frame (index 3), not clamped;
* frames are normalised with the ImageNet mean/std (``mean``/``std`` buffers, in the state
  dict and in the zoo file); the network's residue is added to the *normalised* centre frame
  and the sum de-normalised;
* ``adapt_official_weights=True`` (the zoo) first reorders the window to frames
  ``3, 0, 1, 2, 4, 5, 6`` (the official Torch code puts the reference first), and the weights
  of ``conv1`` depend on that order; False keeps the natural order, reference index 3;
* each of the six neighbours is warped to the centre frame with the flow from :class:`TOFlowSPyNet`
  (zeros outside), the seven frames concatenated in window order (21 channels) and passed through
  ``conv1`` (9x9, 64) - ``conv2`` (9x9, 64) - ``conv3`` (1x1, 64) - ``conv4`` (1x1, 3), ReLU after
  the first three, PyTorch's default init.

:class:`TOFlowSPyNet` is not the BasicVSR family's ``spynet.SPyNet``: four pyramid levels (not six),
no resizing (the coarsest level is H/8; the zero start flow is at H/16 and upsampled, hence the
multiple of 16), no normalisation of its own (TOFlow normalises before), and here each basic
module has batch norm after its first four convs (convs without bias then). In training mode
those BNs use batch statistics and update their running averages, as in mmedit; a fine-tuning
run that wants the official statistics keeps the flow network in eval mode. ``tof_vfi`` uses the
same class without BN and with border padding for its warps.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.conv_module import ConvNormAct
from trainers.archs.flow import flow_warp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_FRAMES = 7
PYRAMID_LEVELS = 4
SIZE_MULTIPLE = 2 ** PYRAMID_LEVELS  # the start flow is at 1/16 of the frame


class TOFlowBasicModule(nn.Module):
    """One pyramid level: [ref, warped supp, upsampled flow] (8 channels) -> flow residue (2).

    Five 7x7 convs 8-32-64-32-16-2 (mmcv ``ConvModule`` names: ``basic_module.<j>.conv``/``.bn``),
    ReLU after the first four, batch norm before each ReLU when ``norm``.
    """

    def __init__(self, norm: bool):
        super().__init__()
        widths = (8, 32, 64, 32, 16, 2)
        last = len(widths) - 2
        self.basic_module = nn.Sequential(*[
            ConvNormAct(c_in, c_out, 7, 1, 3, norm=norm and i < last, act="relu" if i < last else None)
            for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]))
        ])

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[N, 8, H, W]`` -> flow residue ``[N, 2, H, W]``."""
        return self.basic_module(x)


class TOFlowSPyNet(nn.Module):
    """TOFlow's four-level SPyNet on already normalised frames (see the module docstring).

    Args:
        norm: Batch norm in the basic modules (``tof``: yes; ``tof_vfi``'s zoo: no).
        warp_padding: ``grid_sample`` padding of the per-level warps: ``"zeros"`` in ``tof``,
            ``"border"`` in ``tof_vfi`` (the two mmedit copies differ there).
    """

    def __init__(self, norm: bool, warp_padding: str = "zeros"):
        super().__init__()
        self.warp_padding = warp_padding
        self.basic_module = nn.ModuleList([TOFlowBasicModule(norm) for _ in range(PYRAMID_LEVELS)])

    def forward(self, ref: Tensor, supp: Tensor) -> Tensor:
        """Flow ``[N, 2, H, W]`` (pixels, x then y) from ``ref`` to ``supp``, both ``[N, 3, H, W]``
        with H, W multiples of 16: warping ``supp`` with it aligns it to ``ref``."""
        n, _, h, w = ref.shape
        refs, supps = [ref], [supp]
        for _ in range(PYRAMID_LEVELS - 1):
            refs.append(F.avg_pool2d(refs[-1], kernel_size=2, stride=2, count_include_pad=False))
            supps.append(F.avg_pool2d(supps[-1], kernel_size=2, stride=2, count_include_pad=False))
        flow = ref.new_zeros(n, 2, h // SIZE_MULTIPLE, w // SIZE_MULTIPLE)
        for level, module in enumerate(self.basic_module):
            coarse_ref, coarse_supp = refs[-1 - level], supps[-1 - level]
            flow_up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            warped = flow_warp(coarse_supp, flow_up.permute(0, 2, 3, 1), padding_mode=self.warp_padding)
            flow = flow_up + module(torch.cat([coarse_ref, warped, flow_up], 1))
        return flow


def check_multiple_of_16(name: str, h: int, w: int) -> None:
    """ValueError unless ``h`` and ``w`` are positive multiples of 16."""
    if h <= 0 or w <= 0 or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise ValueError(f"{name} needs frame height and width that are multiples of {SIZE_MULTIPLE} "
                         f"(pad the frames first), got {h}x{w}")


class TOFlow(nn.Module):
    """TOFlow video SR on bicubic-upsampled frames (see the module docstring).

    Args:
        adapt_official_weights: Reorder the window as the official weights expect (reference
            frame first); the zoo config sets it.
    """

    def __init__(self, adapt_official_weights: bool = False):
        super().__init__()
        self.adapt_official_weights = bool(adapt_official_weights)
        self.ref_idx = 0 if self.adapt_official_weights else NUM_FRAMES // 2
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.spynet = TOFlowSPyNet(norm=True, warp_padding="zeros")
        self.conv1 = nn.Conv2d(3 * NUM_FRAMES, 64, 9, 1, 4)
        self.conv2 = nn.Conv2d(64, 64, 9, 1, 4)
        self.conv3 = nn.Conv2d(64, 64, 1)
        self.conv4 = nn.Conv2d(64, 3, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, lrs: Tensor) -> Tensor:
        """``lrs`` ``[N, 7, 3, H, W]`` upsampled frames in [0, 1] -> centre frame ``[N, 3, H, W]``.

        Raises:
            ValueError: If ``lrs`` is not a 7-frame RGB window with sides multiple of 16.
        """
        if lrs.dim() != 5 or lrs.shape[1] != NUM_FRAMES or lrs.shape[2] != 3:
            raise ValueError(f"tof expects bicubic-upsampled windows [N, {NUM_FRAMES}, 3, H, W], "
                             f"got shape {list(lrs.shape)}")
        n, t, c, h, w = lrs.shape
        check_multiple_of_16("tof", h, w)
        if self.adapt_official_weights:
            lrs = lrs[:, [3, 0, 1, 2, 4, 5, 6]]
        lrs = ((lrs.reshape(-1, c, h, w) - self.mean) / self.std).view(n, t, c, h, w)
        ref = lrs[:, self.ref_idx]
        aligned = []
        for i in range(t):
            if i == self.ref_idx:
                aligned.append(ref)
            else:
                flow = self.spynet(ref, lrs[:, i])
                aligned.append(flow_warp(lrs[:, i], flow.permute(0, 2, 3, 1)))
        x = torch.stack(aligned, dim=1).view(n, -1, h, w)
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        x = self.conv4(x) + ref
        return x * self.std + self.mean
