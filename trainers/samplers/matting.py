"""The matting sampler (DIM, GCA, IndexNet): composite on the fly, crop, augment, make trimaps.

Training shards hold one foreground and its alpha per sample (``comp1k``/``matting_folder``
``split: train``); backgrounds come from a separate shard set (``image_folder``, ``crop:
false``; COCO train2017 for Comp-1k), drawn by a seeded index and read with ranged reads
(:mod:`trainers.samplers.banks`). MMEditing 0.16.1 composites DIM's and IndexNet's training
images offline (each foreground with 100 fixed COCO backgrounds, ``preprocess_comp1k_dataset.py``)
and GCA's online; here every pipeline composites online, DIM/IndexNet with the offline
rule (background upscaled with PIL bicubic if smaller, top-left crop, ``uint8`` truncated
merge), so a sample is the pair the preparation script would have made for a random
background. Each pipeline then follows its zoo config step by step:

* ``dim`` (``dim_stage{1,2,3}``; also ``gca``/``indexnet`` with ``dimaug: true``, the
  ``*_dimaug`` configs): CropAroundUnknown {320, 480, 640} around a soft alpha pixel
  (bilinear if the image must grow), horizontal flip p 0.5, resize to 320 (bilinear),
  GenerateTrimap (elliptical erode/dilate, kernel sizes 1-29 drawn independently).
* ``indexnet``: trimap by distance transform (1-19 px) on the whole image, then
  CropAroundUnknown {320, 480, 640} (bicubic; trimap nearest), resize to 320 (same),
  horizontal flip p 0.5.
* ``gca`` (``gca``, ``baseline``): background resized (bicubic) to the foreground;
  CompositeFg p 0.5 (a second foreground from ``foregrounds``, nearest-resized, ``a = 1 -
  (1 - a1)(1 - a2)``); RandomAffine (rotation +-30 deg only for images with a side >= 1024,
  scale 0.8-1.25 per axis, shear +-10, flips p 0.5 per axis; nearest); GenerateTrimap (1, 30);
  CropAroundCenter 512; RandomJitter (hue +-40, adaptive S/V); merged = fg a + bg (1 - a) in
  float, from the jittered foreground.

Random numbers are drawn from the sample's generator in the reference's order, one call per
reference ``np.random`` call (GCA's background and second-foreground index draws included;
DIM/IndexNet draw the background index first, where the reference's offline composition
made its choice), so with the reference's ``np.random`` replaced by the same generator the
two produce the same sample (``tests/golden/make_matting_goldens.py``). Outputs are
``uint8`` channels-last (GCA's float merged and jittered fg rounded half to even): ImageNet
normalisation and the one-hot trimap are the task's, on the device.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

from degradations.matting import (
    composite_two_foregrounds,
    crop_around_center,
    crop_around_unknown,
    fit_background_crop,
    fit_background_resize,
    generate_trimap,
    generate_trimap_distance,
    merge_uint8,
    random_affine,
    random_jitter,
)
from preprocessing.schema import ALPHA, BG, FG, GT, MERGED, TRIMAP, decode_grey, decode_image, image_bytes
from trainers.samplers.banks import SampleBank
from trainers.strict import Strict

__all__ = ["MattingDataConfig", "MattingSampler", "TRAIN_KEYS", "VAL_KEYS"]

TRAIN_KEYS = ("merged", "trimap", "alpha", "fg", "bg")
VAL_KEYS = ("merged", "trimap", "alpha")  # + "fg", "bg" when the shard has them


class MattingDataConfig(Strict):
    """The ``data`` section of a matting family: which zoo pipeline, where backgrounds come from."""

    pipeline: Literal["dim", "gca", "indexnet"] = Field(
        "dim", description="the zoo config family whose training pipeline to follow")
    dimaug: bool = Field(False, description="gca/indexnet with DIM's augmentation (the *_dimaug zoo configs)")
    backgrounds: str = Field(description="background shard set (image_folder, crop: false): local path or s3://")
    foregrounds: str | None = Field(
        None, description="gca: fg+alpha shard set CompositeFg draws a second foreground from "
        "(normally the training shards' URI)")
    # DIM / IndexNet
    crop_sizes: tuple[int, ...] = Field((320, 480, 640), description="CropAroundUnknown square sides")
    out_size: int = Field(320, ge=8, description="DIM/IndexNet: side the crop is resized to")
    flip_prob: float = Field(0.5, ge=0, le=1, description="DIM/IndexNet: horizontal flip probability")
    dist_thr: int = Field(20, ge=2, description="IndexNet: distance-transform trimap width drawn from [1, dist_thr)")
    # GenerateTrimap (DIM, GCA)
    kernel_size: tuple[int, int] = Field((1, 30), description="erode/dilate kernel sizes drawn from [min, max)")
    # GCA
    crop_size: int = Field(512, ge=8, description="gca: CropAroundCenter side")
    composite_fg_prob: float = Field(0.5, ge=0, le=1, description="gca: CompositeFg probability")
    affine_degrees: float = Field(30, ge=0)
    affine_scale: tuple[float, float] = (0.8, 1.25)
    affine_shear: float = Field(10, ge=0)
    affine_flip_prob: float = Field(0.5, ge=0, le=1)
    hue_range: int = Field(40, ge=0, description="gca: RandomJitter hue shift drawn from [-hue_range, hue_range)")
    bank_cache_mb: int = Field(32, ge=0, description="per-actor LRU of raw background/foreground bytes, per bank")

    @field_validator("crop_sizes")
    @classmethod
    def _positive_sizes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(s < 1 for s in v):
            raise ValueError(f"crop_sizes must be positive ints, got {list(v)}")
        return v

    @field_validator("kernel_size")
    @classmethod
    def _kernel_range(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= v[0] < v[1]:
            raise ValueError(f"kernel_size must be (min, max) with 1 <= min < max, got {list(v)}")
        return v

    @field_validator("affine_scale")
    @classmethod
    def _scale_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"affine_scale must be (min, max) with 0 < min <= max, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _pipeline_options(self) -> "MattingDataConfig":
        if self.dimaug and self.pipeline == "dim":
            raise ValueError("dimaug: true applies to gca/indexnet (their *_dimaug configs); dim already is DIM's pipeline")
        if self.effective == "gca" and self.composite_fg_prob > 0 and not self.foregrounds:
            raise ValueError("gca's CompositeFg draws a second foreground: set foregrounds to a fg+alpha shard set "
                             "(normally the training shards), or composite_fg_prob: 0")
        return self

    @property
    def effective(self) -> str:
        """The augmentation actually run: ``dim`` for the dimaug variants."""
        return "dim" if self.dimaug else self.pipeline


def _decode(members: dict, name: str, grey: bool):
    data = members.get(name)
    if not data:
        return None
    try:
        return decode_grey(data) if grey else decode_image(data)
    except ValueError as exc:
        raise ValueError(f"sample {members.get('__key__')}: {name}: {exc}") from None


def _same_size(key, arrays: dict[str, np.ndarray]) -> None:
    sizes = {n: a.shape[:2] for n, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{n} {h}x{w}" for n, (h, w) in sizes.items())
        raise ValueError(f"sample {key}: members differ in size ({shown})")


def _u8(x: np.ndarray) -> np.ndarray:
    """Round half to even and saturate, as ``clip(round(x), 0, 255)`` for x >= -0.5 (float images here are >= 0)."""
    return x if x.dtype == np.uint8 else cv2.convertScaleAbs(x)


def _hw1(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 3 else x[:, :, None]


class MattingSampler:
    """Matting samples for one run; banks open lazily in the process that first trains."""

    def __init__(self, cfg: MattingDataConfig):
        self.cfg = cfg
        self._backgrounds: SampleBank | None = None
        self._foregrounds: SampleBank | None = None

    def __getstate__(self):
        return {"cfg": self.cfg}

    def __setstate__(self, state):
        self.__init__(state["cfg"])

    @property
    def backgrounds(self) -> SampleBank:
        if self._backgrounds is None:
            self._backgrounds = SampleBank(self.cfg.backgrounds, (GT,), "backgrounds", self.cfg.bank_cache_mb << 20,
                                           "shard the background images with adapter image_folder, crop: false")
        return self._backgrounds

    @property
    def foregrounds(self) -> SampleBank:
        if self._foregrounds is None:
            self._foregrounds = SampleBank(self.cfg.foregrounds, (FG, ALPHA), "foregrounds",
                                           self.cfg.bank_cache_mb << 20,
                                           "a comp1k/matting_folder split: train shard set")
        return self._foregrounds

    # ------------------------------------------------------------------ training
    def train(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One training sample: ``merged``, ``fg``, ``bg`` HxWx3 and ``trimap``, ``alpha`` HxWx1,
        all ``uint8``, ``out_size`` (dim, indexnet) or ``crop_size`` (gca) square."""
        key = members.get("__key__")
        fg, alpha = _decode(members, FG, False), _decode(members, ALPHA, True)
        if fg is None or alpha is None:
            have = sorted(k for k in members if not k.startswith("__"))
            raise ValueError(f"sample {key}: training needs fg.png and alpha.png members, got {have} "
                             "(shard comp1k / matting_folder with split: train)")
        _same_size(key, {"fg": fg, "alpha": alpha})
        if self.cfg.effective == "gca":
            return self._gca(fg, alpha, rng)
        return self._dim(fg, alpha, rng, distance_trimap=self.cfg.effective == "indexnet")

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        data = image_bytes(self.backgrounds.draw(rng), GT)
        try:
            return decode_image(data)
        except ValueError as exc:
            raise ValueError(f"backgrounds {self.cfg.backgrounds}: {exc}") from None

    def _dim(self, fg, alpha, rng, distance_trimap: bool) -> dict[str, np.ndarray]:
        c = self.cfg
        bg = fit_background_crop(self._background(rng), fg.shape[:2])
        merged = merge_uint8(fg, bg, alpha)
        arrays = {"alpha": alpha, "merged": merged, "fg": fg, "bg": bg}
        if distance_trimap:  # IndexNet: trimap first, bicubic crop+resize, then flip
            arrays["trimap"] = generate_trimap_distance(alpha, (1, c.dist_thr), rng=rng)
            interp = {k: "bicubic" for k in arrays} | {"trimap": "nearest"}
            out = crop_around_unknown(arrays, None, list(c.crop_sizes), c.out_size, rng=rng, interpolations=interp,
                                      unknown_from="alpha")
            out = self._flip(out, rng)
        else:  # DIM: bilinear crop, flip, resize, then the trimap
            out = crop_around_unknown(arrays, None, list(c.crop_sizes), None, rng=rng, unknown_from="alpha")
            out = self._flip(out, rng)
            size = (c.out_size, c.out_size)
            out = {k: cv2.resize(v, size, interpolation=cv2.INTER_LINEAR) for k, v in out.items()}
            out["trimap"] = generate_trimap(out["alpha"], c.kernel_size, rng=rng)
        return {k: _hw1(out[k]) if k in ("trimap", "alpha") else out[k] for k in TRAIN_KEYS}

    def _flip(self, arrays: dict[str, np.ndarray], rng) -> dict[str, np.ndarray]:
        if rng.random() < self.cfg.flip_prob:
            return {k: np.ascontiguousarray(v[:, ::-1]) for k, v in arrays.items()}
        return arrays

    def _gca(self, fg, alpha, rng) -> dict[str, np.ndarray]:
        c = self.cfg
        h, w = fg.shape[:2]
        bg = fit_background_resize(self._background(rng), (h, w))
        fg, alpha = self._composite_fg(fg, alpha, rng)
        warped = random_affine({"alpha": alpha, "fg": fg}, c.affine_degrees, None, c.affine_scale, c.affine_shear,
                               c.affine_flip_prob, rng=rng)
        alpha, fg = warped["alpha"], warped["fg"]
        trimap = generate_trimap(alpha, c.kernel_size, rng=rng)
        crop = crop_around_center({"fg": fg, "alpha": alpha, "trimap": trimap, "bg": bg}, c.crop_size, rng=rng)
        fg = random_jitter(crop["fg"], crop["alpha"], c.hue_range, rng=rng)
        a = crop["alpha"][:, :, None].astype(np.float32)
        a /= 255.0
        merged = fg * a  # MergeFgAndBg: fg a + (1 - a) bg, float32, the same operations in place
        np.subtract(1.0, a, out=a)
        a = a * crop["bg"]
        merged += a
        return {"merged": _u8(merged), "trimap": _hw1(crop["trimap"]), "alpha": _hw1(crop["alpha"]),
                "fg": _u8(fg), "bg": crop["bg"]}

    def _composite_fg(self, fg, alpha, rng) -> tuple[np.ndarray, np.ndarray]:
        """GCA's CompositeFg: with probability ``composite_fg_prob`` a second foreground goes behind.

        Returns the foreground (float32 when composited, as the reference) and the alpha as
        ``uint8`` through the reference's float32 round trip ``uint8(a / 255 * 255)``.
        """
        if not rng.random() < self.cfg.composite_fg_prob:
            return fg, alpha  # uint8(float32(a / 255) * 255) == a for every uint8 a: nothing to redo
        other = self.foregrounds.draw(rng)
        try:
            fg2, a2 = decode_image(other[FG]), decode_grey(other[ALPHA])
        except ValueError as exc:
            raise ValueError(f"foregrounds {self.cfg.foregrounds}: {exc}") from None
        h, w = fg.shape[:2]
        fg2 = cv2.resize(fg2, (w, h), interpolation=cv2.INTER_NEAREST)
        a2 = cv2.resize(a2.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_NEAREST)
        # Leaves fg and alpha as they were when the combined alpha would be all one.
        fg, a = composite_two_foregrounds(fg.astype(np.float32), alpha.astype(np.float32) / 255.0,
                                          fg2.astype(np.float32), a2)
        return fg, (a * 255).astype(np.uint8)

    # ------------------------------------------------------------------ validation
    def val(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A full-size evaluation sample: ``merged`` HxWx3, ``trimap`` and ``alpha`` HxWx1 (uint8),
        plus ``fg``/``bg`` HxWx3 when the shard has them. No padding or resizing: the task pads
        to its network's multiple."""
        key = members.get("__key__")
        out = {"merged": _decode(members, MERGED, False), "trimap": _decode(members, TRIMAP, True),
               "alpha": _decode(members, ALPHA, True)}
        missing = [n for n, v in out.items() if v is None]
        if missing:
            have = sorted(k for k in members if not k.startswith("__"))
            raise ValueError(f"sample {key}: evaluation needs merged.png, trimap.png and alpha.png, missing "
                             f"{', '.join(missing)} (have {have}; shard comp1k / matting_folder with split: test)")
        for name, member in (("fg", FG), ("bg", BG)):
            img = _decode(members, member, False)
            if img is not None:
                out[name] = img
        _same_size(key, out)
        return {k: _hw1(v) if k in ("trimap", "alpha") else v for k, v in out.items()}
