"""DeepFill v2 generator: Yu et al., "Free-Form Image Inpainting with Gated Convolution",
ICCV 2019.

Zoo configs: the generator (``generator.`` in the checkpoint) of
``deepfillv2_256x256_8x2_places`` and ``deepfillv2_256x256_8x2_celeba`` (the two configs
build the same network; they differ only in data): 4,414,908 parameters, plus the 3x3
``fuse_kernel`` buffer the checkpoint holds.

Network: DeepFill v1's two-stage layout (see ``deepfill_v1``) with every conv replaced by a
gated conv (one conv of doubled width; ``ELU(features) * sigmoid(gate)``; the decoders'
last layers keep the gate but drop the ELU), reflect padding, widths x0.75 (``channel_factor``)
everywhere except the refine decoder, which the zoo config leaves at full width (input
2 x 96 = 192 channels, then 128-128-64-64-32-16-3). Both decoders end in tanh.

Forward, as mmedit's: ``x = cat([masked_img, ones, mask])`` ``[B, 5, H, W]`` ->
``(stage1_res, stage2_res)`` (``[B, 3, H, W]`` each, in [-1, 1]); with
``return_offset=True`` the contextual attention comes third. H and W multiples of 8, and
over 64.

What MMEditing's ``TwoStageInpaintor`` (``disc_input_with_mask=True``) does around the
network, for the task that trains it:

* Data: ``gt`` 256x256 **BGR** (as loaded by mmcv; the zoo weights expect BGR) in [-1, 1]
  (``(x - 127.5) / 127.5``); free-form (irregular) masks ``[B, 1, H, W]``, 1 = hole;
  ``masked_img = gt * (1 - mask)``; input ``cat([masked_img, ones_like(mask), mask], 1)``.
* Composites: ``stage{k}_fake_img = masked_img * (1 - mask) + stage{k}_res * mask``.
* Every iteration (``disc_step`` 1), discriminator step first (only stage 2 is judged;
  the SN-PatchGAN ``deepfill_v2_disc`` sees the image with the mask as a 4th channel):
  hinge loss ``mean(relu(1 + D(cat([stage2_fake_img.detach(), mask]))))
  + mean(relu(1 - D(cat([gt, mask]))))`` (weight 1: the GAN loss weight applies to the
  generator only), means over every element of the score map; no gradient penalty, no
  disc-shift term. Adam 1e-4.
* Then the generator step (discriminator frozen): for both stages ``L1(res, gt, weight=mask)``
  + ``L1(res, gt, weight=1 - mask)`` (weight 1 each; ``sum(|d| * w) / (sum(w broadcast to
  3 channels) + 1e-12)``, on raw outputs) plus ``0.1 * -mean(D(cat([stage2_fake_img, mask])))``.
  Adam 1e-4.
* Test: ``fake_img = stage2_res * mask + masked_img * (1 - mask)`` is what the metrics see.
"""

from trainers.archs.deepfill_blocks import DeepFillEncoderDecoder


class DeepFillv2(DeepFillEncoderDecoder):
    """Coarse-to-fine inpainting generator with contextual attention and gated convs.

    Args:
        in_channels: Input channels: masked image (3), ones (1), mask (1).
        channel_factor: Width multiplier of the encoders, necks and stage-1 decoder
            (0.75 in the zoo).
        stage2_decoder_channel_factor: Width multiplier of the refine decoder (1 in the zoo).
        padding_mode: Padding of every conv (``reflect`` in the zoo).
        softmax_scale: Temperature of the contextual-attention softmax.
        return_offset: Also return the contextual attention.
    """

    def __init__(
        self,
        in_channels: int = 5,
        channel_factor: float = 0.75,
        stage2_decoder_channel_factor: float = 1.0,
        padding_mode: str = "reflect",
        softmax_scale: float = 10.0,
        return_offset: bool = False,
    ):
        super().__init__(
            conv_type="gated_conv",
            in_channels=in_channels,
            channel_factor=channel_factor,
            stage2_decoder_channel_factor=stage2_decoder_channel_factor,
            out_act="tanh",
            padding_mode=padding_mode,
            softmax_scale=softmax_scale,
            return_offset=return_offset,
        )
