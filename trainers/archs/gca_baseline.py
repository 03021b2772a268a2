"""The GCA paper's baseline: the GCA matting network without guided contextual attention (Li and
Lu, "Natural Image Matting via Guided Contextual Attention", AAAI 2020, sec. 4.2).

Zoo configs: ``baseline_r34_4x10_200k_comp1k`` (``in_channels=6``, one-hot trimap) and
``baseline_dimaug_r34_4x10_200k_comp1k`` (``in_channels=4``, class-index trimap); both
``SimpleEncoderDecoder(ResShortcutEnc, ResShortcutDec)`` in MMEditing 0.x.

Its state dict is ``gca``'s minus ``encoder.guidance_head``, ``encoder.gca`` and
``decoder.gca``; everything else (layers, keys, init, ImageNet mapping, and what the mattor
does around the network: normalised RGB + trimap in, raw alpha out, ``(tanh + 1) / 2``, L1
on the unknown region, reflect padding to a multiple of 32 at test time) is as documented in
``trainers/archs/gca.py``. The network never reads the trimap's meaning here: the
4-channel variant takes the class index (0, 1, 2) only because its config feeds it so.
"""

from collections.abc import Sequence

from trainers.archs.gca import ShortcutEncoderDecoder


class GCABaselineNet(ShortcutEncoderDecoder):
    """ResNet-34-D shortcut encoder-decoder; defaults build ``baseline_r34_4x10_200k_comp1k``'s backbone.

    Args:
        layers: Encoder blocks per stage.
        in_channels: 3 image channels plus the trimap's (6 zoo, 4 ``dimaug``).
        with_spectral_norm: Encoder spectral norm.
        late_downsample: Late stem downsampling (encoder and decoder).
        decoder_layers: Decoder blocks per stage.
        decoder_kernel_size: Decoder conv kernel.
        decoder_with_spectral_norm: Decoder spectral norm.
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 4, 2), in_channels: int = 6, with_spectral_norm: bool = True,
                 late_downsample: bool = False, decoder_layers: Sequence[int] = (2, 3, 3, 2),
                 decoder_kernel_size: int = 3, decoder_with_spectral_norm: bool = True):
        super().__init__(layers, in_channels, with_spectral_norm, late_downsample, decoder_layers,
                         decoder_kernel_size, decoder_with_spectral_norm, guided=False)
