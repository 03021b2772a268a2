"""Key map of the iconvsr_vimeo90k_bi/bd generator (padding 3: the EDVR-M extractor fuses 7 frames, so
its TSA shapes differ from iconvsr_reds4's), which ../shared/reference has none for, taken from
MMEditing 0.16.1's own IconVSR built with those configs' arguments.

Run with the interpreter that has mmedit, from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_vsr_key_maps.py
"""
import sys, json
sys.path.insert(0, "tests/golden"); import mmedit_shim; mmedit_shim.install()
from mmedit.models.backbones.sr_backbones.iconvsr import IconVSR
kw = dict(mid_channels=64, num_blocks=30, keyframe_stride=5, padding=3, spynet_pretrained=None, edvr_pretrained=None)
net = IconVSR(**kw)
sd = net.state_dict()
out = {"config": "iconvsr_vimeo90k_bi", "note": "made by tests/golden/make_arch_goldens_iconvsr.py's mmedit (0.16.1) IconVSR "
       "with the iconvsr_vimeo90k_bi/bd generator arguments; bi and bd share it",
       "mmedit_version": "0.16.1",
       "generator": {"class": "IconVSR", "kwargs": kw, "num_params": sum(p.numel() for p in net.parameters()),
                     "keys": {k: list(v.shape) for k, v in sd.items()}}, "discriminator": None}
json.dump(out, open("tests/data/mmedit_checkpoint_keys/iconvsr_vimeo90k_bi.json", "w"), indent=1)
print(out["generator"]["num_params"], len(sd))
