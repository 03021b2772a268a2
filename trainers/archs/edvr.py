"""EDVR: sliding-window video super-resolution (x4) with PCD alignment and TSA fusion.

Paper: Wang et al., "EDVR: Video Restoration with Enhanced Deformable Convolutional Networks",
CVPRW 2019. Zoo configs: ``edvrm_wotsa_x4_g8_600k_reds`` (checkpoint ``edvrm_wotsa_x4_8x4_600k_reds``,
EDVR-M without TSA), ``edvrm_x4_g8_600k_reds`` (``edvrm_x4_8x4_600k_reds``, EDVR-M),
``edvrl_wotsa_c128b40_8x8_lr2e-4_600k_reds4`` and ``edvrl_c128b40_8x8_lr2e-4_600k_reds4`` (EDVR-L:
128 channels, 40 reconstruction blocks).

As MMEditing 0.16.1's ``EDVRNet``: a window ``[N, T, 3, H, W]`` (T = ``num_frames``, H and W
multiples of 4) in, the super-resolved centre frame ``[N, 3, 4H, 4W]`` out. The front half
(per-frame features and their L1/L2/L3 pyramid, PCD alignment of every frame to frame
``center_frame_idx``, fusion) is :class:`~trainers.archs.edvr_blocks.EDVRFeatureExtractor`,
shared with IconVSR; this class adds the reconstruction head. What one might not expect:

* x4 only: two pixel-shuffle x2 stages, each followed by LeakyReLU 0.1, then ``conv_hr`` +
  LeakyReLU and ``conv_last``. The second stage always outputs 64 channels and ``conv_hr`` is
  64 wide whatever ``mid_channels`` is (EDVR-L's 128-channel trunk narrows to 64 there).
* The output is a residual over the centre LR frame upsampled bilinearly (``align_corners=False``),
  so ``in_channels`` must equal ``out_channels``.
* ``with_tsa=False`` fuses with one 1x1 conv over the concatenated aligned features of all
  frames, with a bias and no activation. The fused feature is not passed through an activation
  before the reconstruction blocks in either case.
* mmedit's ``init_weights`` (run on every from-scratch model) re-initialises TSA's
  ConvModule convs (``feat_fusion``, ``spatial_attn1-4``, ``spatial_attn_l1-l3``,
  ``spatial_attn_add1``) Kaiming-*uniform* (slope 0.1, ``fan_out``), zero bias; done here in
  the constructor. ``temporal_attn1/2``, ``spatial_attn5`` and ``spatial_attn_add2`` keep
  PyTorch's default conv init.
* The zoo's TSA models were not trained from scratch: ``edvrm_x4`` starts from the
  no-TSA model's weights (mmcv ``load_from``, non-strict: everything but the 1x1 ``fusion``
  loads; TSA starts fresh) and for the first ``train_cfg.tsa_iter`` iterations (50k for M, 5k
  for L) only parameters whose name contains ``fusion`` train. Both are the training task's
  business; the network is the same either way.
"""

from torch import Tensor, nn

from trainers.archs.blocks import PixelShufflePack, ResidualBlockNoBN
from trainers.archs.edvr_blocks import LRELU_SLOPE, EDVRFeatureExtractor

HR_CHANNELS = 64  # fixed width of the last upsampling stage and conv_hr, as mmedit's


class EDVRNet(EDVRFeatureExtractor):
    """EDVR generator (see the module docstring).

    Args:
        in_channels: Channels of the input frames.
        out_channels: Channels of the output frame (must equal ``in_channels``: residual output).
        mid_channels: Feature channels of extraction, alignment, fusion and reconstruction.
        num_frames: Frames per input window.
        deform_groups: Deformable groups of the PCD alignment's DCNs.
        num_blocks_extraction: Residual blocks of the per-frame feature extraction.
        num_blocks_reconstruction: Residual blocks after fusion.
        center_frame_idx: Index of the frame being super-resolved (the alignment reference).
        with_tsa: Fuse with TSA; otherwise a 1x1 conv over all frames.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, mid_channels: int = 64, num_frames: int = 5,
                 deform_groups: int = 8, num_blocks_extraction: int = 5, num_blocks_reconstruction: int = 10,
                 center_frame_idx: int = 2, with_tsa: bool = True):
        if in_channels != out_channels:
            raise ValueError(f"EDVRNet adds the upsampled centre frame to its output, so in_channels "
                             f"({in_channels}) must equal out_channels ({out_channels})")
        super().__init__(in_channels=in_channels, mid_channels=mid_channels, num_frames=num_frames,
                         deform_groups=deform_groups, num_blocks_extraction=num_blocks_extraction,
                         center_frame_idx=center_frame_idx, with_tsa=with_tsa)
        c = mid_channels
        self.reconstruction = nn.Sequential(*(ResidualBlockNoBN(c) for _ in range(num_blocks_reconstruction)))
        self.upsample1 = PixelShufflePack(c, c, 2, upsample_kernel=3)
        self.upsample2 = PixelShufflePack(c, HR_CHANNELS, 2, upsample_kernel=3)
        self.conv_hr = nn.Conv2d(HR_CHANNELS, HR_CHANNELS, 3, 1, 1)
        self.conv_last = nn.Conv2d(HR_CHANNELS, out_channels, 3, 1, 1)
        self.img_upsample = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)
        self.init_weights()

    def init_weights(self) -> None:
        """mmedit's from-scratch init of the TSA ConvModules (Kaiming-uniform, see the module docstring)."""
        if not self.with_tsa:
            return
        f = self.fusion
        for block in (f.feat_fusion, f.spatial_attn1, f.spatial_attn2, f.spatial_attn3, f.spatial_attn4,
                      f.spatial_attn_l1, f.spatial_attn_l2, f.spatial_attn_l3, f.spatial_attn_add1):
            nn.init.kaiming_uniform_(block.conv.weight, a=LRELU_SLOPE, mode="fan_out", nonlinearity="leaky_relu")
            nn.init.zeros_(block.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, num_frames, C, H, W]`` window (H, W multiples of 4) -> centre frame ``[N, C, 4H, 4W]``.

        Raises:
            ValueError: If the window's frame count, channels or size do not fit (one line).
        """
        feat = super().forward(x)  # checks the window
        out = self.reconstruction(feat)
        out = self.lrelu(self.upsample1(out))
        out = self.lrelu(self.upsample2(out))
        out = self.lrelu(self.conv_hr(out))
        out = self.conv_last(out)
        return out + self.img_upsample(x[:, self.center_frame_idx])
