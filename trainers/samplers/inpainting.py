"""The inpainting sampler (DeepFill v1/v2, Global&Local, PConv, AOT-GAN): crop, resize, a hole mask.

Shards hold whole images (``places365`` / ``celeba_hq`` / ``image_folder`` with ``crop:
false``; member ``gt.png``). Training follows the zoo's ``train_pipeline`` (MMEditing 0.16.1)
step by step, every random number from the sample's generator in the reference's order:

1. ``LoadMask`` -- the hole mask, drawn first at the output size: ``bbox`` (DeepFill v1,
   Global&Local; 128 box, delta 40, margin 20), ``irregular`` (DeepFill v2, PConv; vertices
   [4, 10), angle 6, length [20, 128), width [10, 45), hole ratio in (0.15, 0.65)), ``brush``
   (DeepFill v2's free-form ``ff`` strokes) or ``set`` (AOT-GAN: a mask drawn by a seeded
   index from a ``mask_folder`` shard set, :mod:`trainers.samplers.banks`).
2. The image crop: ``crop: random`` (``Crop`` 384 random, then ``Resize`` to 256, bilinear;
   an image smaller than the crop is taken whole on that axis, as the reference) or
   ``random_resized`` (AOT's ``RandomResizedCrop`` 512: area 0.08-1, aspect 3/4-4/3, ten tries
   then a centre fallback, bilinear) or ``none`` (the whole image resized).
3. ``Flip`` (AOT: horizontal p 0.5, image and mask together; the 256 px configs do not flip).
4. Set masks only: nearest resize to the output size, then ``RandomRotation`` (AOT: 0-45
   degrees, clockwise as ``mmcv.imrotate``, bilinear on the 0/1 mask, zero border).
5. ``ColorJitter`` (AOT: brightness, contrast, saturation 0.5, hue 0.5; torchvision's PIL
   operations in a random order).

The zoo configs in these terms (``data:`` fields; unlisted ones at their defaults, which are the
256 px configs' ``size: [256, 256]``, ``crop: random``, ``crop_size: [384, 384]``, no flip or
jitter):

=========================================================  ===========================================
deepfillv1_256x256_{4x4_celeba,8x2_places}, gl_256x256_8x12_*  ``mask: {type: bbox}``
deepfillv2_256x256_8x2_*, pconv_256x256_stage{1,2}_*           ``mask: {type: irregular}``
AOT-GAN_512x512_4x12_places                                    ``size: [512, 512]``, ``crop: random_resized``,
                                                               ``flip_prob: 0.5``, ``color_jitter: {}``,
                                                               ``mask: {type: set, set: <train masks>,
                                                               rotation: [0, 45]}``, ``val_mask: {type: set,
                                                               set: <mask_512, 0.5-0.6 list>}``
=========================================================  ===========================================

(``brush`` is DeepFill v2's free-form ``ff`` mode, which no zoo config uses.)

Normalisation to [-1, 1] and ``GetMaskedImage`` (holes filled with 127.5) are the task's, on
the device: the sampler ships ``uint8`` only.

Validation follows the zoo's ``test_pipeline`` (for the 256 px configs that *is* the training
pipeline; AOT's is mask set + ``RandomResizedCrop`` with no flip or jitter) but with every
random choice drawn from a generator seeded by ``(val_seed, sample key)`` alone -- never the
rng the stream passes in -- so an image gets the same crop and the same hole in every epoch,
run and worker, and validation scores are comparable across runs. ``val_mask`` (default: the
training ``mask``) chooses the hole; set masks are used as stored (no flip or rotation, as
the reference's test ``LoadMask``), resized (nearest) to the output size if they differ.

Outputs (train and val): ``gt`` ``uint8`` HxWx3 RGB, ``mask`` ``uint8`` HxWx1 in {0, 255} with
255 = hole, ``H, W = size`` -- like every uint8 image column, ``trainers.tasks.common.to_batch``
turns it into float ``[B, 1, H, W]`` in {0., 1.}, 1 = hole (MMEditing's convention); ``bbox`` masks add ``mask_bbox``, ``int32``
``(top, left, h, w)`` (DeepFill v1's local discriminator crop). The 256 px zoo configs load
images BGR (``LoadImageFromFile`` default) and do not convert: a task reproducing them bit for
bit with zoo weights swaps channels itself; ``gt`` here is always RGB.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

import cv2
import numpy as np
from PIL import Image, ImageEnhance
from pydantic import Field, field_validator, model_validator

from degradations.masks import bbox_to_mask, brush_stroke_mask, irregular_mask, random_bbox
from degradations.seeding import key_digest
from preprocessing.schema import GT, MASK, decode_grey, decode_image, image_bytes
from trainers.samplers.banks import SampleBank
from trainers.strict import Strict

__all__ = ["InpaintingDataConfig", "InpaintingSampler", "BboxMask", "IrregularMask", "BrushMask", "SetMask",
           "ColorJitterConfig", "val_rng"]


def _range(v, name: str, lo: float = -math.inf, strict: bool = True):
    if v[0] < lo or (v[0] >= v[1] if strict else v[0] > v[1]):
        raise ValueError(f"{name} must be (low, high) with {lo} <= low {'<' if strict else '<='} high, got {list(v)}")
    return v


class BboxMask(Strict):
    """A rectangular hole (DeepFill v1, Global&Local): ``degradations.masks.random_bbox``."""

    type: Literal["bbox"] = "bbox"
    max_bbox_shape: tuple[int, int] = Field((128, 128), description="largest box (h, w)")
    max_bbox_delta: int = Field(40, ge=0, description="box sides shrink by up to delta // 2")
    min_margin: int = Field(20, ge=0, description="distance of the full-size box to the border")


class IrregularMask(Strict):
    """Irregular strokes (DeepFill v2, PConv): ``degradations.masks.irregular_mask``."""

    type: Literal["irregular"] = "irregular"
    num_vertices: tuple[int, int] = Field((4, 10), description="start points, half-open range")
    max_angle: float = Field(6.0, ge=1)
    length_range: tuple[int, int] = (20, 128)
    brush_width: tuple[int, int] = (10, 45)
    area_ratio_range: tuple[float, float] = Field((0.15, 0.65), description="open interval of the hole ratio")

    @field_validator("num_vertices", "length_range", "brush_width")
    @classmethod
    def _int_ranges(cls, v, info):
        return _range(v, info.field_name, 0)

    @field_validator("area_ratio_range")
    @classmethod
    def _ratio(cls, v):
        if not 0 <= v[0] < v[1] <= 1:
            raise ValueError(f"area_ratio_range must satisfy 0 <= low < high <= 1, got {list(v)}")
        return v


class BrushMask(Strict):
    """DeepFill v2's free-form brush strokes (``ff``): ``degradations.masks.brush_stroke_mask``."""

    type: Literal["brush"] = "brush"
    num_vertices: tuple[int, int] = (4, 12)
    mean_angle: float = 2 * math.pi / 5
    angle_range: float = Field(2 * math.pi / 15, ge=0)
    brush_width: tuple[int, int] = (12, 40)
    num_loops: tuple[int, int] = (1, 4)

    @field_validator("num_vertices", "brush_width", "num_loops")
    @classmethod
    def _int_ranges(cls, v, info):
        return _range(v, info.field_name, 1)


class SetMask(Strict):
    """A mask from a user mask set (AOT-GAN: PConv's irregular masks), sharded with ``mask_folder``.

    Training draws the index uniformly from the sample's generator and applies the zoo's
    augmentation: the image's flip, nearest resize to the output size, rotation by an angle
    uniform in ``rotation`` degrees (AOT: (0, 45); (0, 0) = none). Validation takes the mask
    of a fixed index derived from the sample key, unaugmented.
    """

    type: Literal["set"] = "set"
    set: str = Field(description="mask shard set (adapter mask_folder): local path or s3://")
    rotation: tuple[float, float] = Field((0.0, 0.0), description="training rotation range, degrees (clockwise)")
    allow_empty: bool = Field(False, description="accept a mask with no hole (after augmentation)")
    allow_full: bool = Field(False, description="accept a mask that is all hole")
    max_redraws: int = Field(10, ge=0, description="training: redraws (new index, new augmentation) when a "
                             "mask comes out empty/full and that is not allowed; then an error")
    cache_mb: int = Field(32, ge=0, description="per-actor LRU of raw mask bytes")

    @field_validator("rotation")
    @classmethod
    def _rot(cls, v):
        return _range(v, "rotation", strict=False)


MaskConfig = Annotated[Union[BboxMask, IrregularMask, BrushMask, SetMask], Field(discriminator="type")]


class ColorJitterConfig(Strict):
    """torchvision ``ColorJitter`` (AOT-GAN's training): factors ``U[max(0, 1 - x), 1 + x]``, hue ``U[-h, h]``."""

    brightness: float = Field(0.5, ge=0)
    contrast: float = Field(0.5, ge=0)
    saturation: float = Field(0.5, ge=0)
    hue: float = Field(0.5, ge=0, le=0.5)


class InpaintingDataConfig(Strict):
    """The ``data`` section of an inpainting family: image crop/resize, flip, jitter and the hole mask."""

    size: tuple[int, int] = Field((256, 256), description="output (h, w); masks are drawn at this size")
    crop: Literal["random", "random_resized", "none"] = Field(
        "random", description="random: Crop crop_size then Resize to size (256 px configs); random_resized: "
        "RandomResizedCrop to size (AOT); none: the whole image resized")
    crop_size: tuple[int, int] = Field((384, 384), description="crop: random -- the crop (h, w) before the resize")
    crop_scale: tuple[float, float] = Field((0.08, 1.0), description="random_resized: area fraction range")
    crop_ratio: tuple[float, float] = Field((3 / 4, 4 / 3), description="random_resized: aspect (w/h) range")
    flip_prob: float = Field(0.0, ge=0, le=1, description="horizontal flip of image and mask (AOT 0.5)")
    color_jitter: ColorJitterConfig | None = Field(None, description="AOT: {} for its 0.5/0.5/0.5/0.5")
    mask: MaskConfig = Field(default_factory=BboxMask)
    val_mask: MaskConfig | None = Field(None, description="validation hole (default: mask); AOT: its test set")
    val_crop: Literal["zoo", "center"] = Field(
        "zoo", description="zoo: the test pipeline's (random) crop drawn from the key's generator; center: "
        "centred crop_size crop (random) / the whole image (random_resized, none)")
    val_seed: int = Field(0, description="seeds the fixed validation crops and masks with the sample key")

    @field_validator("size", "crop_size")
    @classmethod
    def _positive(cls, v, info):
        if min(v) < 1:
            raise ValueError(f"{info.field_name} must be positive, got {list(v)}")
        return v

    @field_validator("crop_scale", "crop_ratio")
    @classmethod
    def _pos_range(cls, v, info):
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"{info.field_name} must be (low, high) with 0 < low <= high, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _masks_fit(self) -> "InpaintingDataConfig":
        for name, m in (("mask", self.mask), ("val_mask", self.val_mask)):
            if m is not None and not isinstance(m, SetMask):
                try:  # one cheap draw: a box larger than the image etc. fails here, before Ray starts
                    _generate(m, self.size, np.random.default_rng(0))
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        return self


def val_rng(val_seed: int, key: str) -> np.random.Generator:
    """The generator of a validation sample: a function of ``(val_seed, key)`` only."""
    return np.random.default_rng(np.random.SeedSequence([int(val_seed) & (2**63 - 1), 0x1A7A1, key_digest(key)]))


def _generate(m, size, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """(HxW {0,1} mask, bbox or None) from a generated mask type."""
    if isinstance(m, BboxMask):
        box = random_bbox(size, m.max_bbox_shape, m.max_bbox_delta, m.min_margin, rng=rng)
        return bbox_to_mask(size, box), np.asarray(box, np.int32)
    if isinstance(m, IrregularMask):
        return irregular_mask(size, m.num_vertices, m.max_angle, m.length_range, m.brush_width,
                              m.area_ratio_range, rng=rng, max_tries=200), None
    return brush_stroke_mask(size, m.num_vertices, m.mean_angle, m.angle_range, m.brush_width, m.num_loops,
                             rng=rng), None


def _random_crop_box(h, w, ch, cw, rng) -> tuple[int, int, int, int]:
    """mmedit ``Crop(random_crop=True)``: x offset drawn first, then y; a crop larger than the image shrinks."""
    ch, cw = min(h, ch), min(w, cw)
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return y, x, ch, cw


def _random_resized_box(h, w, scale, ratio, rng) -> tuple[int, int, int, int]:
    """mmedit/torchvision ``RandomResizedCrop.get_params``: ten tries, then a centre crop."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))  # random.randint is inclusive
            left = int(rng.integers(0, w - cw + 1))
            return top, left, ch, cw
    return _center_resized_box(h, w, ratio)


def _center_resized_box(h, w, ratio) -> tuple[int, int, int, int]:
    in_ratio = w / h
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        ch, cw = h, w
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _resize(img: np.ndarray, size, interp=cv2.INTER_LINEAR) -> np.ndarray:
    if img.shape[:2] == tuple(size):
        return img
    return cv2.resize(img, (size[1], size[0]), interpolation=interp)


def _rotate_clockwise(mask: np.ndarray, angle: float) -> np.ndarray:
    """``mmcv.imrotate(mask, angle)``: about the centre, clockwise, bilinear, zero border."""
    h, w = mask.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) * 0.5, (h - 1) * 0.5), -angle, 1.0)
    return cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def color_jitter(img: np.ndarray, cfg: ColorJitterConfig, rng: np.random.Generator) -> np.ndarray:
    """torchvision ``ColorJitter`` on a PIL image: a random order of brightness, contrast,
    saturation (PIL ``ImageEnhance``) and hue (HSV hue channel shifted by ``int(h * 255)`` mod
    256). Draws: the order, then one factor per non-zero parameter, as ``get_params``."""
    order = rng.permutation(4)
    factors = []
    for x in (cfg.brightness, cfg.contrast, cfg.saturation):
        factors.append(rng.uniform(max(0.0, 1 - x), 1 + x) if x > 0 else None)
    factors.append(rng.uniform(-cfg.hue, cfg.hue) if cfg.hue > 0 else None)
    im = Image.fromarray(img)
    for i in order:
        f = factors[i]
        if f is None:
            continue
        if i == 0:
            im = ImageEnhance.Brightness(im).enhance(f)
        elif i == 1:
            im = ImageEnhance.Contrast(im).enhance(f)
        elif i == 2:
            im = ImageEnhance.Color(im).enhance(f)
        else:
            h, s, v = im.convert("HSV").split()
            hh = ((np.asarray(h).astype(np.int16) + int(f * 255)) % 256).astype(np.uint8)
            im = Image.merge("HSV", (Image.fromarray(hh, "L"), s, v)).convert("RGB")
    return np.asarray(im)


class InpaintingSampler:
    """Inpainting samples for one run; the mask-set banks open lazily in the process that first draws."""

    def __init__(self, cfg: InpaintingDataConfig):
        self.cfg = cfg
        self._banks: dict[str, SampleBank] = {}

    def __getstate__(self):
        return {"cfg": self.cfg}

    def __setstate__(self, state):
        self.__init__(state["cfg"])

    def bank(self, m: SetMask) -> SampleBank:
        if m.set not in self._banks:
            self._banks[m.set] = SampleBank(m.set, (MASK,), "mask set", m.cache_mb << 20,
                                            "shard the masks with adapter mask_folder")
        return self._banks[m.set]

    def _set_mask(self, m: SetMask, index: int) -> np.ndarray:
        data = self.bank(m).get(index)[MASK]
        try:
            mask = decode_grey(data)
        except ValueError as exc:
            raise ValueError(f"mask set {m.set}: sample {index}: {exc}") from None
        return (mask > 0).astype(np.uint8)

    @staticmethod
    def _bad(m: SetMask, mask: np.ndarray) -> str | None:
        if not m.allow_empty and not mask.any():
            return "has no hole pixel"
        if not m.allow_full and mask.all():
            return "is all hole"
        return None

    # ------------------------------------------------------------------ training
    def train(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One training sample: ``gt`` HxWx3, ``mask`` HxWx1 (0/255, 255 = hole), [``mask_bbox``]."""
        c = self.cfg
        img = _decode_gt(members)
        m = c.mask
        if isinstance(m, SetMask):
            return self._train_set(img, m, rng)
        mask, box = _generate(m, c.size, rng)
        gt = self._crop(img, rng, train=True)
        if c.flip_prob > 0 and rng.random() < c.flip_prob:
            gt, mask = gt[:, ::-1], mask[:, ::-1]
            if box is not None:
                box = np.asarray([box[0], c.size[1] - box[1] - box[3], box[2], box[3]], np.int32)
        if c.color_jitter is not None:
            gt = color_jitter(np.ascontiguousarray(gt), c.color_jitter, rng)
        return _out(gt, mask, box)

    def _train_set(self, img, m: SetMask, rng) -> dict[str, np.ndarray]:
        c = self.cfg
        bank = self.bank(m)
        for attempt in range(m.max_redraws + 1):
            index = int(rng.integers(len(bank)))  # LoadMask first, as the reference
            raw = self._set_mask(m, index)
            if attempt == 0:
                gt = self._crop(img, rng, train=True)
            flip = c.flip_prob > 0 and rng.random() < c.flip_prob
            mask = _resize(raw[:, ::-1] if flip else raw, c.size, cv2.INTER_NEAREST)
            if m.rotation[1] > m.rotation[0] or m.rotation[0] != 0:
                mask = _rotate_clockwise(np.ascontiguousarray(mask), rng.uniform(*m.rotation))
            why = self._bad(m, mask)
            if why is None:
                break
        else:
            raise ValueError(f"mask set {m.set}: mask {index} {why} after augmentation, "
                             f"{m.max_redraws} redraws did not help (allow_empty/allow_full, or fix the set)")
        if flip:
            gt = gt[:, ::-1]
        if c.color_jitter is not None:
            gt = color_jitter(np.ascontiguousarray(gt), c.color_jitter, rng)
        return _out(gt, mask, None)

    def _crop(self, img: np.ndarray, rng, train: bool) -> np.ndarray:
        c = self.cfg
        h, w = img.shape[:2]
        if c.crop == "random":
            if train or c.val_crop == "zoo":
                y, x, ch, cw = _random_crop_box(h, w, *c.crop_size, rng)
            else:
                ch, cw = min(h, c.crop_size[0]), min(w, c.crop_size[1])
                y, x = (h - ch) // 2, (w - cw) // 2
            img = img[y:y + ch, x:x + cw]
        elif c.crop == "random_resized" and (train or c.val_crop == "zoo"):
            y, x, ch, cw = _random_resized_box(h, w, c.crop_scale, c.crop_ratio, rng)
            img = img[y:y + ch, x:x + cw]
        return _resize(np.ascontiguousarray(img), c.size)

    # ------------------------------------------------------------------ validation
    def val(self, members: dict[str, bytes], rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """The fixed validation sample of this key: same keys as :meth:`train`; ``rng`` is ignored
        (the crop and hole depend on ``(val_seed, key)`` only)."""
        c = self.cfg
        key = members.get("__key__")
        if key is None:
            raise ValueError("validation needs the sample key (__key__) to fix its mask")
        img = _decode_gt(members)
        g = val_rng(c.val_seed, str(key))
        m = c.val_mask or c.mask
        if isinstance(m, SetMask):
            bank = self.bank(m)
            index = int(g.integers(len(bank)))
            mask = _resize(self._set_mask(m, index), c.size, cv2.INTER_NEAREST)
            why = self._bad(m, mask)
            if why is not None:
                raise ValueError(f"mask set {m.set}: validation mask {index} (for sample {key}) {why} "
                                 "(allow_empty/allow_full, or fix the set)")
            box = None
        else:
            mask, box = _generate(m, c.size, g)
        return _out(self._crop(img, g, train=False), mask, box)


def _decode_gt(members: dict) -> np.ndarray:
    key = members.get("__key__")
    data = image_bytes(members, GT)
    if data is None:
        have = sorted(k for k in members if not k.startswith("__"))
        raise ValueError(f"sample {key}: inpainting needs a gt.png member, got {have} "
                         "(shard places365 / celeba_hq / image_folder with crop: false)")
    try:
        return decode_image(data)
    except ValueError as exc:
        raise ValueError(f"sample {key}: gt.png: {exc}") from None


def _out(gt: np.ndarray, mask: np.ndarray, box) -> dict[str, np.ndarray]:
    hole = mask.reshape(*mask.shape[:2], 1) * np.uint8(255)  # {0, 1} -> {0, 255}: to_batch makes it {0., 1.}
    out = {"gt": np.ascontiguousarray(gt), "mask": hole}
    if box is not None:
        out["mask_bbox"] = np.asarray(box, np.int32)
    return out
