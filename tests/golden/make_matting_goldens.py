"""Write ``tests/data/golden/matting.npz``: MMEditing 0.16.1's matting training pipelines, sample by sample.

Run with the reference interpreter (see ``mmedit_shim.py``), from the repository root::

    /tmp/mmedit-venv/bin/python tests/golden/make_matting_goldens.py

The reference draws from the global ``np.random``; here ``np.random.randint/uniform/rand/random``
are replaced by one ``numpy.random.Generator`` per sample (``default_rng(seed)``), mapping each
call to its Generator counterpart (``randint`` -> ``integers``, ``rand`` -> ``random``). restoray's
sampler makes the same calls in the same order, so given ``default_rng(seed)`` it must produce
the same sample; ``tests/trainers/test_matting_golden.py`` checks it.

What runs, per zoo config (their ``train_pipeline`` up to the composite, before rescaling and
normalisation, with the data paths pointed at generated files):

* ``gca_r34_4x10_200k_comp1k`` as is (online composition; ``RandomLoadResizeBg``'s directory
  listing sorted, since restoray's background bank is in key order).
* ``dim_stage1_v16_1x1_1000k_comp1k`` and ``indexnet_mobv2_1x16_78k_comp1k``: these read an
  offline composite. It is made here by the reference's own ``preprocess_comp1k_dataset.py``
  (``get_data_info``) with the background the sampler would draw: one ``integers(n_bg)`` draw
  first, which restoray's sampler makes when it picks the background from its bank.

Inputs are smooth synthetic images stored as PNG bytes in the golden (so both sides decode the
same pixels); outputs are the reference's arrays rounded to uint8 like the sampler's, stored as
PNG bytes too (BGR colour, as cv2 writes; the test decodes them with cv2).
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import mmedit_shim  # noqa: E402

mmedit_shim.install()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from mmcv import Config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "golden", "matting.npz")
CONFIGS = os.path.join(os.path.dirname(__import__("mmedit").__file__), ".mim", "configs", "mattors")
SEEDS = (0, 1, 2)
GCA_SEEDS = (0, 1)
# fg and bg are stored for seed 0 only (merged checks them for the other seeds): a smaller golden.
KEYS = {True: ("merged", "fg", "bg", "alpha", "trimap"), False: ("merged", "alpha", "trimap")}


class GeneratorRandom:
    """The subset of ``np.random``'s legacy API the matting transforms call, on a Generator."""

    def __init__(self, gen: np.random.Generator):
        self.gen = gen

    def randint(self, low, high=None, size=None):
        return self.gen.integers(low, high, size)

    def uniform(self, low=0.0, high=1.0, size=None):
        return self.gen.uniform(low, high, size)

    def rand(self, *shape):
        return self.gen.random(shape) if shape else self.gen.random()

    def random(self, size=None):
        return self.gen.random(size)


def use_generator(gen: np.random.Generator) -> None:
    shim = GeneratorRandom(gen)
    for name in ("randint", "uniform", "rand", "random"):
        setattr(np.random, name, getattr(shim, name))


def smooth(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth, posterised RGB image (a few long sinusoids per channel): compresses well as PNG."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for _ in range(3):
        f = sum(np.sin(xx / rng.uniform(40, 160) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(40, 160) + rng.uniform(0, 6))
                for _ in range(3))
        chans.append(20 + 215 * (f - f.min()) / (f.max() - f.min()))
    return (np.round(np.stack(chans, -1) / 12) * 12).astype(np.uint8)  # posterised: flat patches, small PNGs


def alpha_matte(h: int, w: int, seed: int) -> np.ndarray:
    """Opaque blob with a soft rim 0 < a < 255 of varying width, zero outside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    r = np.sqrt(((yy - cy) / (0.32 * h)) ** 2 + ((xx - cx) / (0.28 * w)) ** 2)
    r += 0.08 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    return np.round(np.clip((1.15 - r) / 0.3, 0, 1) * 255).astype(np.uint8)


def png(img: np.ndarray) -> bytes:
    """PNG bytes of an RGB (HxWx3) or grey (HxW) array."""
    arr = img[..., ::-1] if img.ndim == 3 else img
    return cv2.imencode(".png", np.ascontiguousarray(arr))[1].tobytes()


def write(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def to_u8(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    return x if x.dtype == np.uint8 else np.clip(np.round(x), 0, 255).astype(np.uint8)


def png_of(x) -> np.ndarray:
    """uint8 PNG bytes (as an array) of a BGR (HxWx3) or grey output, rounded to uint8 first."""
    return np.frombuffer(cv2.imencode(".png", to_u8(x), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes(), np.uint8)


def pipeline_until(cfg_path: str, last: str, **paths):
    """The config's train pipeline up to and including ``last``, data paths replaced."""
    from mmedit.datasets.pipelines import Compose

    cfg = Config.fromfile(cfg_path)
    steps = []
    for step in copy.deepcopy(cfg.train_pipeline):
        if step["type"] == "RandomLoadResizeBg":
            step["bg_dir"] = paths["bg_dir"]
        if step["type"] == "CompositeFg":
            step["fg_dirs"], step["alpha_dirs"] = [paths["fg_dir"]], [paths["alpha_dir"]]
        steps.append(step)
        if step["type"] == last:
            break
    pipe = Compose(steps)
    for t in pipe.transforms:
        if type(t).__name__ == "RandomLoadResizeBg":
            t.bg_list = sorted(t.bg_list)
    return pipe


def main() -> None:
    # fga: no rescale for GCA's 512 crop; fgb: a side >= 1024 (GCA rotates) and one < 512 (GCA rescales)
    fgs = {"fga": (540, 520), "fgb": (400, 1024)}
    bgs = {"bg0": (400, 500), "bg1": (700, 760)}  # bg0 smaller than every fg: the upscale rules
    inputs = {}
    for i, (name, (h, w)) in enumerate(fgs.items()):
        inputs[f"fg/{name}"] = png(smooth(h, w, 10 + i))
        inputs[f"alpha/{name}"] = png(alpha_matte(h, w, 20 + i))
    for i, (name, (h, w)) in enumerate(bgs.items()):
        inputs[f"bg/{name}"] = png(smooth(h, w, 30 + i))
    out = {f"input/{k}": np.frombuffer(v, np.uint8) for k, v in inputs.items()}

    with tempfile.TemporaryDirectory() as tmp:
        for k, v in inputs.items():
            write(os.path.join(tmp, f"{k}.png"), v)
        paths = {"bg_dir": os.path.join(tmp, "bg"), "fg_dir": os.path.join(tmp, "fg"),
                 "alpha_dir": os.path.join(tmp, "alpha")}
        gca = pipeline_until(os.path.join(CONFIGS, "gca", "gca_r34_4x10_200k_comp1k.py"), "MergeFgAndBg", **paths)
        for name in fgs:
            for seed in GCA_SEEDS:
                use_generator(np.random.default_rng(seed))
                r = gca({"alpha_path": os.path.join(tmp, "alpha", f"{name}.png"),
                         "fg_path": os.path.join(tmp, "fg", f"{name}.png")})
                for key in KEYS[seed == 0]:
                    out[f"gca/{name}/{seed}/{key}"] = png_of(r[key])
        for zoo, cfg in (("dim", os.path.join(CONFIGS, "dim", "dim_stage1_v16_1x1_1000k_comp1k.py")),
                         ("indexnet", os.path.join(CONFIGS, "indexnet", "indexnet_mobv2_1x16_78k_comp1k.py"))):
            pipe = pipeline_until(cfg, "GenerateTrimap" if zoo == "dim" else "Flip", **paths)
            for name in ("fgb",):  # 400x1024: crops 480/640 rescale and still leave room to choose
                for seed in SEEDS:
                    gen = np.random.default_rng(seed)
                    bg_name = sorted(bgs)[int(gen.integers(len(bgs)))]  # the sampler's background draw
                    info = offline_composite(tmp, name, bg_name, f"{zoo}{seed}")
                    use_generator(gen)
                    r = pipe({k: os.path.join(tmp, v) for k, v in info.items()})
                    for key in KEYS[seed == 0]:
                        out[f"{zoo}/{name}/{seed}/{key}"] = png_of(r[key])
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}: {len(out)} arrays, {os.path.getsize(OUT) / 1e6:.2f} MB")


def offline_composite(tmp: str, fg_name: str, bg_name: str, tag: str) -> dict:
    """The reference's Comp-1k composition (``preprocess_comp1k_dataset.get_data_info``) for one pair."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.spec_from_file_location(
        "preprocess_comp1k", os.path.join(os.path.dirname(CONFIGS), "..", "tools", "data", "matting", "comp1k",
                                          "preprocess_comp1k_dataset.py"))
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    prep.fix_png_file = lambda *a: None  # pngfix only strips colour chunks; not installed here
    fg = Image.open(os.path.join(tmp, "fg", f"{fg_name}.png")).convert("RGB")
    alpha = np.array(Image.open(os.path.join(tmp, "alpha", f"{fg_name}.png")).convert("RGB")) / 255.0
    info = prep.get_data_info((f"{fg_name}_{tag}.png", os.path.join(tmp, "bg", f"{bg_name}.png"),
                               (alpha, fg, f"alpha/{fg_name}.png", f"fg/{fg_name}.png"), (tmp, True, "training")))
    return info


if __name__ == "__main__":
    main()
