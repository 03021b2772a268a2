"""Architectures, registered by hand in ``ARCHS`` under the name of their file.

The name is the one used everywhere (config ``model.name``, file name, builder
name); constructor arguments are MMEditing 0.x's, so a zoo config's generator or
discriminator arguments can be passed through unchanged and its checkpoint loads strictly.
"""

from torch import nn

from trainers.archs.aot import AOTEncoderDecoder
from trainers.archs.aot_disc import SoftMaskPatchDiscriminator
from trainers.archs.edsr import EDSR
from trainers.archs.gl import GLEncoderDecoder
from trainers.archs.gl_disc import GLDiscs
from trainers.archs.modified_vgg import ModifiedVGG
from trainers.archs.msrresnet import MSRResNet
from trainers.archs.pconv import PConvEncoderDecoder
from trainers.archs.rdn import RDN
from trainers.archs.rrdbnet import RRDBNet
from trainers.archs.srcnn import SRCNN
from trainers.archs.unet_disc_sn import UNetDiscriminatorWithSpectralNorm

ARCHS: dict[str, type[nn.Module]] = {
    "srcnn": SRCNN,
    "edsr": EDSR,
    "rdn": RDN,
    "msrresnet": MSRResNet,
    "rrdbnet": RRDBNet,
    # inpainting
    "gl": GLEncoderDecoder,
    "pconv": PConvEncoderDecoder,
    "aot": AOTEncoderDecoder,
    # discriminators
    "modified_vgg": ModifiedVGG,
    "unet_disc_sn": UNetDiscriminatorWithSpectralNorm,
    "gl_disc": GLDiscs,
    "aot_disc": SoftMaskPatchDiscriminator,
}


def build_arch(name: str, **kwargs) -> nn.Module:
    """Builds the architecture registered as ``name`` with constructor ``kwargs``.

    Args:
        name: Key in ``ARCHS``.
        **kwargs: Constructor arguments, named as in MMEditing 0.x.

    Returns:
        The freshly initialised module.

    Raises:
        ValueError: If ``name`` is not registered; the message lists the known names.
    """
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHS))}")
    return ARCHS[name](**kwargs)
