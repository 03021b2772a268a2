"""Architectures, registered by hand in ``ARCHS`` under the name of their file.

The name is the one used everywhere (config ``model.name``, file name, builder
name); constructor arguments are MMEditing 0.x's, so a zoo config's generator or
discriminator arguments can be passed through unchanged and its checkpoint loads strictly.
"""

import inspect

import torch
from torch import nn

from trainers.archs.aot import AOTEncoderDecoder
from trainers.archs.aot_disc import SoftMaskPatchDiscriminator
from trainers.archs.basicvsr import BasicVSRNet
from trainers.archs.basicvsr_pp import BasicVSRPlusPlus
from trainers.archs.cain import CAINNet
from trainers.archs.deepfill_v1 import DeepFillv1
from trainers.archs.deepfill_v1_disc import DeepFillv1Discriminators
from trainers.archs.deepfill_v2 import DeepFillv2
from trainers.archs.deepfill_v2_disc import DeepFillv2Discriminator
from trainers.archs.dicnet import DICNet
from trainers.archs.dim import DIMEncoderDecoder, from_torchvision_vgg16
from trainers.archs.edsr import EDSR
from trainers.archs.edvr import EDVRNet
from trainers.archs.flavr import FLAVRNet
from trainers.archs.gca import GCANet, imagenet_init_
from trainers.archs.gca_baseline import GCABaselineNet
from trainers.archs.gl import GLEncoderDecoder
from trainers.archs.gl_disc import GLDiscs
from trainers.archs.glean import GLEANStyleGANv2
from trainers.archs.iconvsr import IconVSR
from trainers.archs.indexnet import IndexNetEncoderDecoder, from_torchvision_mobilenet_v2
from trainers.archs.light_cnn import LightCNN
from trainers.archs.liif_edsr import LIIFEDSR
from trainers.archs.liif_rdn import LIIFRDN
from trainers.archs.lte import LTE, from_torchvision_vgg19
from trainers.archs.modified_vgg import ModifiedVGG
from trainers.archs.msrresnet import MSRResNet
from trainers.archs.pconv import PConvEncoderDecoder
from trainers.archs.plain_refiner import PlainRefiner
from trainers.archs.rdn import RDN
from trainers.archs.realbasicvsr import RealBasicVSRNet
from trainers.archs.rrdbnet import RRDBNet
from trainers.archs.spynet import SPyNet
from trainers.archs.srcnn import SRCNN
from trainers.archs.stylegan2_disc import StyleGAN2Discriminator
from trainers.archs.tdan import TDANNet
from trainers.archs.tof import TOFlow
from trainers.archs.tof_vfi import TOFlowVFINet
from trainers.archs.ttsr import TTSRNet
from trainers.archs.ttsr_disc import TTSRDiscriminator
from trainers.archs.unet_disc_sn import UNetDiscriminatorWithSpectralNorm

ARCHS: dict[str, type[nn.Module]] = {
    # image super-resolution
    "srcnn": SRCNN,
    "edsr": EDSR,
    "rdn": RDN,
    "liif_edsr": LIIFEDSR,
    "liif_rdn": LIIFRDN,
    "msrresnet": MSRResNet,
    "rrdbnet": RRDBNet,
    "glean": GLEANStyleGANv2,
    # face super-resolution
    "dicnet": DICNet,
    # reference-based super-resolution
    "ttsr": TTSRNet,
    "lte": LTE,
    # video super-resolution
    "spynet": SPyNet,
    "basicvsr": BasicVSRNet,
    "realbasicvsr": RealBasicVSRNet,
    "iconvsr": IconVSR,
    "basicvsr_pp": BasicVSRPlusPlus,
    "edvr": EDVRNet,
    "tdan": TDANNet,
    "tof": TOFlow,
    # frame interpolation
    "cain": CAINNet,
    "flavr": FLAVRNet,
    "tof_vfi": TOFlowVFINet,
    # inpainting
    "deepfill_v1": DeepFillv1,
    "deepfill_v2": DeepFillv2,
    "gl": GLEncoderDecoder,
    "pconv": PConvEncoderDecoder,
    "aot": AOTEncoderDecoder,
    # matting
    "dim": DIMEncoderDecoder,
    "plain_refiner": PlainRefiner,
    "indexnet": IndexNetEncoderDecoder,
    "gca": GCANet,
    "gca_baseline": GCABaselineNet,
    # discriminators
    "modified_vgg": ModifiedVGG,
    "unet_disc_sn": UNetDiscriminatorWithSpectralNorm,
    "deepfill_v1_disc": DeepFillv1Discriminators,
    "deepfill_v2_disc": DeepFillv2Discriminator,
    "gl_disc": GLDiscs,
    "aot_disc": SoftMaskPatchDiscriminator,
    "stylegan2_disc": StyleGAN2Discriminator,
    "light_cnn": LightCNN,
    "ttsr_disc": TTSRDiscriminator,
}

# Encoders that start from an ImageNet classifier in torchvision's published layout
# (``init_from.<role>: {source: ..., format: torchvision}``): arch name -> the function mapping
# that state dict onto the arch's encoder keys, extra input channels set as the zoo does.
def _whole_net_start(cls: type[nn.Module]):
    """A converter for archs whose ImageNet start changes more than mapped keys (GCA zeroes its
    stem's trimap filters and quietens its attention, ``gca.imagenet_init_``): the whole started
    network's state, built from a fixed seed so every run that names the file starts the same."""

    def convert(state_dict, **arch_kwargs) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = cls(**arch_kwargs)
        imagenet_init_(net, state_dict)
        return net.state_dict()

    convert.__signature__ = inspect.Signature(  # accepts every arch argument
        [inspect.Parameter("state_dict", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=p.default)
           for n, p in inspect.signature(cls).parameters.items()])
    return convert


TORCHVISION_INIT = {
    "dim": from_torchvision_vgg16,
    "indexnet": from_torchvision_mobilenet_v2,
    "gca": _whole_net_start(GCANet),
    "gca_baseline": _whole_net_start(GCABaselineNet),
    "lte": from_torchvision_vgg19,
}


def from_torchvision(name: str, state_dict, **arch_kwargs) -> dict:
    """``state_dict`` (torchvision layout) mapped onto arch ``name``'s encoder; the converter
    gets the arch arguments it takes (``in_channels``, ``layers``)."""
    if name not in TORCHVISION_INIT:
        raise ValueError(f"{name} has no torchvision ImageNet initialisation; those that do: "
                         f"{', '.join(sorted(TORCHVISION_INIT))}")
    convert = TORCHVISION_INIT[name]
    accepted = inspect.signature(convert).parameters
    return convert(state_dict, **{k: v for k, v in arch_kwargs.items() if k in accepted and k != "state_dict"})


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
