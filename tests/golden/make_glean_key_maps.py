"""Key maps of ``glean_ffhq_16x``, ``glean_cat_8x`` and ``glean_cat_16x`` (generator and
discriminator), which ../shared/reference has none for, taken from MMEditing 0.16.1's own
``GLEANStyleGANv2`` and ``StyleGAN2Discriminator`` built with those configs' arguments
(``pretrained`` None: the StyleGAN2 files are not downloaded). The
``glean_in128out1024_4x2_300k_ffhq_celebahq`` map is the shared one.

Run with the interpreter that has mmedit, from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_glean_key_maps.py
"""
import json
import sys

sys.path.insert(0, "tests/golden")
import mmedit_shim  # noqa: E402

mmedit_shim.install()
import mmcv  # noqa: E402
from mmedit.models.backbones.sr_backbones.glean_styleganv2 import GLEANStyleGANv2  # noqa: E402
from mmedit.models.components.stylegan2.generator_discriminator import StyleGAN2Discriminator  # noqa: E402

CONFIGS = "/work/mmedit-venv/lib/python3.11/site-packages/mmedit/.mim/configs/restorers/glean"


def describe(cls, kwargs):
    net = cls(**kwargs)
    sd = net.state_dict()
    return {"class": cls.__name__, "kwargs": kwargs, "num_params": sum(p.numel() for p in net.parameters()),
            "buffer_keys": [k for k, _ in net.named_buffers()],
            "keys": {k: list(v.shape) for k, v in sd.items()}}


for config in ("glean_ffhq_16x", "glean_cat_8x", "glean_cat_16x"):
    model = mmcv.Config.fromfile(f"{CONFIGS}/{config}.py").model
    gen = {k: v for k, v in model.generator.items() if k != "type"} | {"pretrained": None}
    disc = {k: v for k, v in model.discriminator.items() if k != "type"} | {"pretrained": None}
    out = {"config": config, "mmedit_version": "0.16.1",
           "note": "made by tests/golden/make_glean_key_maps.py from mmedit's modules with the config's "
                   "arguments, pretrained (the mmgen StyleGAN2 file) set to None",
           "generator": describe(GLEANStyleGANv2, gen), "discriminator": describe(StyleGAN2Discriminator, disc)}
    json.dump(out, open(f"tests/data/mmedit_checkpoint_keys/{config}.json", "w"), indent=1)
    print(config, out["generator"]["num_params"], out["discriminator"]["num_params"])
