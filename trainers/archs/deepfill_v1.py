"""DeepFill v1 generator: Yu et al., "Generative Image Inpainting with Contextual Attention",
CVPR 2018.

Zoo configs: the generator (``generator.`` in the checkpoint) of
``deepfillv1_256x256_8x2_places`` and ``deepfillv1_256x256_4x4_celeba`` (the two configs
build the same network; they differ in data, batch size and ``disc_step``):
3,601,542 parameters, plus the 3x3 ``fuse_kernel`` buffer the checkpoint holds.

Network (MMEditing 0.x's ``DeepFillEncoderDecoder`` with plain convs; blocks in
``deepfill_blocks``): every conv is reflect-padded and followed by ELU, except each
decoder's last, whose output is clamped to [-1, 1].

* ``stage1`` (coarse): ``encoder`` (6 convs, widths 32-64-64-128-128-128, /4), ``dilation_neck``
  (4 convs, dilation 2/4/8/16), ``decoder`` (7 convs, nearest x2 after the 2nd and 4th).
* ``stage2`` (refine), fed the coarse composite: ``encoder_conv`` -> ``dilation_neck`` and
  ``encoder_attention`` -> ``contextual_attention_neck`` (contextual attention at 1/8 size,
  softmax scale 10, then 2 convs) in parallel; the two 128-channel maps are concatenated
  and decoded by ``decoder`` (in 256).

Forward, as mmedit's: ``x = cat([masked_img, ones, mask])`` ``[B, 5, H, W]`` ->
``(stage1_res, stage2_res)`` (``[B, 3, H, W]`` each, in [-1, 1]); with
``return_offset=True`` the contextual attention ``[B, H/8, W/8, H/8, W/8]`` comes third
(the zoo config leaves it off). H and W multiples of 8, and over 64 (reflect padding of the
dilation-16 conv on the 1/4-size map).

What MMEditing's ``DeepFillv1Inpaintor`` (a ``TwoStageInpaintor``) does around the network,
for the task that trains it:

* Data: ``gt`` 256x256 **BGR** (mmcv loads BGR and the pipeline never swaps; the zoo weights
  expect BGR), normalised to [-1, 1] as ``(x - 127.5) / 127.5``. Mask ``[B, 1, H, W]``,
  1 = hole, one axis-aligned box per image (``mask_bbox = (top, left, h, w)``, kept for the
  local crop). ``masked_img = gt * (1 - mask)`` (hole = 0, mid-grey). Input
  ``cat([masked_img, ones_like(mask), mask], 1)``.
* Composites: ``stage{k}_fake_img = masked_img * (1 - mask) + stage{k}_res * mask``.
* Local patch: the box is grown to ``local_size`` 128x128 around its centre,
  ``top' = max(0, top - (128 - h) // 2)`` (same for left; no clamp at the far side), and
  the 128x128 crops at that box of ``stage2_fake_img`` and ``gt`` are ``fake_local`` /
  ``gt_local`` (the critic ``deepfill_v1_disc`` takes ``(global, local)``).
* Every iteration, critic step (only stage-2 results are judged; WGAN-GP): with
  ``(stage2_fake_img.detach(), fake_local.detach())`` add ``mean(D_g) + mean(D_l)``, with
  ``(gt, gt_local)`` add ``-mean(D_g) - mean(D_l)`` (GAN loss weight 1 for the critic);
  each of those four GAN terms ``t`` also adds a disc-shift term ``0.5 * 1e-3 * t**2`` (mmedit
  squares the loss value ``+-mean(D)``, not the scores); gradient penalty
  ``10 * GP(global_disc, gt, stage2_fake_img, mask) + 10 * GP(local_disc, gt_local, fake_local)``,
  ``GP = mean_{b,y,x}((||grad * mask||_2 - 1)**2) / mean(mask)``: the gradient of the critic's
  output sum at ``a * real + (1 - a) * fake`` (``a ~ U(0, 1)`` per sample), its L2 norm over
  channels per pixel, pixels outside the hole counting ``(0 - 1)**2 = 1``; the local one has
  no mask and no division. Fake, real and GP gradients are summed into one Adam 1e-4 step.
* ``disc_step`` (Places 5, CelebA 2): a counter ``(c + 1) % disc_step`` after each critic
  step; the generator is updated only when it wraps to 0, i.e. once per ``disc_step``
  iterations (each iteration a new batch and one critic step).
* Generator step (critic frozen): for both stages ``L1(res, gt, weight=mask)`` and
  ``L1(res, gt, weight=1 - mask)`` (weight 1 each; ``sum(|d| * w) / (sum(w broadcast to 3
  channels) + 1e-12)``, on the raw outputs, not the composites), plus for stage 2
  ``1e-4 * (-mean(D_g(stage2_fake_img)) - mean(D_l(fake_local)))``; gradients reach stage 1
  through stage 2's input too. Adam 1e-4.
* Test: ``fake_img = stage2_res * mask + masked_img * (1 - mask)`` is what the metrics see.
"""

from trainers.archs.deepfill_blocks import DeepFillEncoderDecoder


class DeepFillv1(DeepFillEncoderDecoder):
    """Coarse-to-fine inpainting generator with contextual attention and plain ELU convs.

    Args:
        in_channels: Input channels: masked image (3), ones (1), mask (1).
        channel_factor: Width multiplier of the encoders, necks and stage-1 decoder
            (1 in the zoo; mmedit's ``channel_factor``, neck and decoder ``in_channels``
            follow from it).
        stage2_decoder_channel_factor: Width multiplier of the refine decoder (1 in the zoo).
        padding_mode: Padding of every conv (``reflect`` in the zoo).
        softmax_scale: Temperature of the contextual-attention softmax.
        return_offset: Also return the contextual attention.
    """

    def __init__(
        self,
        in_channels: int = 5,
        channel_factor: float = 1.0,
        stage2_decoder_channel_factor: float = 1.0,
        padding_mode: str = "reflect",
        softmax_scale: float = 10.0,
        return_offset: bool = False,
    ):
        super().__init__(
            conv_type="conv",
            in_channels=in_channels,
            channel_factor=channel_factor,
            stage2_decoder_channel_factor=stage2_decoder_channel_factor,
            out_act="clip",
            padding_mode=padding_mode,
            softmax_scale=softmax_scale,
            return_offset=return_offset,
        )
