"""``restoray preview``: a PNG contact sheet of what a degradation preset (or an inpainting hole
generator, ``mask-bbox`` / ``mask-irregular`` / ``mask-brush``) makes.

One row per sample: the GT patch, the LQ patch (nearest-upscaled to the GT's
display size, so the degradation is visible pixel for pixel) and the
parameters that sample drew. The GT patches are random crops of the photos
scikit-image ships, so the command needs no data.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from degradations import realbasicvsr as rbv
from degradations import realesrgan as resr
from degradations.presets import CLIP_PRESETS, PRESETS, degrade_pair
from degradations.seeding import sample_rng

PHOTOS = ["astronaut", "rocket", "hubble_deep_field", "coffee", "chelsea", "retina", "immunohistochemistry"]
TILE = 256
TEXT_W = 360


def _photo(name: str) -> np.ndarray:
    from skimage import data as skdata

    img = getattr(skdata, name)()
    return np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]


def _crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    if h < size or w < size:
        img = cv2.resize(img, (max(w, size), max(h, size)), interpolation=cv2.INTER_CUBIC)
        h, w = img.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return img[y : y + size, x : x + size]


def _kernel_text(k) -> str:
    if k is None:
        return "none"
    if k.kind == "sinc":
        return f"sinc {k.size}px wc={k.omega:.2f}"
    extra = f" b={k.beta:.2f}" if k.kind.startswith(("generalized", "plateau")) else ""
    return f"{k.kind} {k.size}px s={k.sigma_x:.2f}/{k.sigma_y:.2f} rot={k.theta:.2f}{extra}"


def _noise_text(n) -> str:
    level = f"sigma={n.sigma:.1f}" if n.kind == "gaussian" else f"scale={n.scale:.2f}"
    return f"{n.kind} {level}{' gray' if n.gray else ''}"


def describe_realesrgan(p: resr.RealESRGANParams) -> list[str]:
    """One line per stage of the x4plus pipeline, in the order they are applied."""
    lines = [
        f"blur1  {_kernel_text(p.kernel1)}",
        f"resize1 {p.resize1.direction} x{p.resize1.scale:.2f} {p.resize1.mode}",
        f"noise1 {_noise_text(p.noise1)}",
        f"jpeg1  q={p.jpeg1:.0f}",
        f"blur2  {_kernel_text(p.kernel2) if p.second_blur else 'skipped'}",
        f"resize2 {p.resize2.direction} x{p.resize2.scale:.2f} {p.resize2.mode}",
        f"noise2 {_noise_text(p.noise2)}",
    ]
    final = "resize+sinc, jpeg" if p.final_resize_first else "jpeg, resize+sinc"
    lines += [f"final  {final} ({p.final_mode})", f"sinc   {_kernel_text(p.sinc)}", f"jpeg2  q={p.jpeg2:.0f}"]
    return lines


def _sample(preset: str, gt: np.ndarray, scale: int, rng: np.random.Generator):
    """(lq, target, description lines) for one GT patch."""
    if preset == "realesrgan":
        params = resr.sample_params(rng)
        out = resr.apply(gt, params, scale=scale)
        return out["lq"], out["gt"], describe_realesrgan(params)
    lq, target = degrade_pair(preset, gt, scale=scale, rng=rng)
    text = {"bicubic": ["BI: MATLAB bicubic", f"x1/{scale}, antialiased", "8-bit quantised"],
            "bd": ["BD: Gaussian sigma 1.6, 12 taps", "subsample [1:-1:4]", "8-bit quantised"]}
    return lq, target, text.get(preset, [preset])


def _text_panel(lines: list[str], height: int) -> np.ndarray:
    panel = np.full((height, TEXT_W, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(panel, line, (6, 20 + 19 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    return panel


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (len(text) * 9 + 8, 20), (255, 255, 255), -1)
    cv2.putText(tile, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


VIDEO_PRESETS = tuple(sorted(CLIP_PRESETS))
STRIP_FRAMES = (0, 4, 9, 14, 15, 22, 29)  # 15 loaded frames, mirrored to 30
FRAME_TILE = 128


def _span(values) -> str:
    values = list(values)
    return f"{min(values):.2f}..{max(values):.2f}" if values else "-"


def _order_text(tag: str, o: rbv.OrderParams) -> list[str]:
    blur = (f"{o.blur.kernels[0].kind} {o.blur.kernels[0].size}px s={_span(k.sigma_x for k in o.blur.kernels)}"
            if o.blur.applied else "skipped")
    noise = f"{o.noise.kind}{' gray' if o.noise.gray else ''} {_span(o.noise.levels)}" if o.noise.kind else "skipped"
    lines = [f"{tag} blur {blur}", f"{tag} resize {o.resize.direction} {o.resize.interp} x{_span(o.resize.scales)}",
             f"{tag} noise {noise}", f"{tag} jpeg q={_span(o.jpeg.qualities)}"]
    if o.video is not None and o.video.codec:
        lines.append(f"{tag} video {o.video.codec} {o.video.bitrate} b/frame")
    return lines


def describe_clip(p: rbv.ClipParams) -> list[str]:
    """Per-clip choices and the range each random walk covered over the clip."""
    f = p.final
    final = "video, resize+sinc" if f.video_first else "resize+sinc, video"
    return _order_text("1st", p.first) + _order_text("2nd", p.second) + [
        f"final {final} ({f.interp}), {f.video.codec or 'no video'} {f.video.bitrate or ''}",
    ]


def _moving_clip(rng: np.random.Generator, frames: int = 15, size: int = 256, step: int = 6) -> list[np.ndarray]:
    """A GT clip: a crop window panning across a photo, so frames differ like video."""
    photo = _photo(PHOTOS[int(rng.integers(0, len(PHOTOS)))])
    photo = cv2.resize(photo, (size + step * frames, size + step * frames), interpolation=cv2.INTER_AREA)
    return [photo[i * step : i * step + size, i * step : i * step + size].astype(np.float32) / 255
            for i in range(frames)]


def clip_sheet(n: int = 2, seed: int = 0, scale: int = 4) -> np.ndarray:
    """Per sample: a GT frame strip, the LQ strip (same frames, nearest-upscaled) and the parameters."""
    rows = []
    for i in range(n):
        rng = sample_rng(seed, 0, f"preview-clip-{i}")
        gt = _moving_clip(rng)
        params = rbv.sample_clip_params(rng, 2 * len(gt))
        out = rbv.apply_clip(gt, params, scale=scale)
        full = gt + gt[::-1]

        def strip(frames, label):
            tiles = [cv2.resize((np.clip(frames[k], 0, 1) * 255).round().astype(np.uint8),
                                (FRAME_TILE, FRAME_TILE), interpolation=cv2.INTER_NEAREST) for k in STRIP_FRAMES]
            return np.hstack([_label(t, f"{label} {k}") for t, k in zip(tiles, STRIP_FRAMES)])

        block = np.vstack([strip(full, "GT"), strip(out["lq"], "LQ")])
        rows.append(np.hstack([block, _text_panel(describe_clip(params), block.shape[0])]))
    return np.vstack([np.pad(r, ((0, 4), (0, 0), (0, 0)), constant_values=255) for r in rows])


# Inpainting hole generators (the training sampler's ``mask.type``), shown as ``mask-<type>``;
# ``set`` masks come from a user's mask shards, so they have no stand-alone preview.
MASK_PRESETS = ("mask-bbox", "mask-irregular", "mask-brush")


def mask_sheet(preset: str, n: int = 4, seed: int = 0) -> np.ndarray:
    """Rows of photo | hole | masked input (holes filled with 127.5, as mmedit's GetMaskedImage) |
    the hole's area, each sample made by the inpainting training sampler with the zoo's defaults
    (384 crop -> 256, the mask type's zoo parameters)."""
    from preprocessing.schema import GT, encode_png
    from trainers.samplers.inpainting import InpaintingDataConfig, InpaintingSampler

    sampler = InpaintingSampler(InpaintingDataConfig(mask={"type": preset.removeprefix("mask-")}))
    rows = []
    for i in range(n):
        photo = _photo(PHOTOS[i % len(PHOTOS)])
        out = sampler.train({GT: encode_png(photo), "__key__": f"preview-{i}"}, sample_rng(seed, 0, f"preview-{i}"))
        gt, hole = out["gt"], out["mask"][..., 0] > 0
        masked = gt.copy()
        masked[hole] = 128
        tiles = [_label(gt, "photo"), _label(np.repeat(hole[..., None] * np.uint8(255), 3, -1), "hole"),
                 _label(masked, "masked input")]
        rows.append(np.hstack(tiles + [_text_panel([preset, f"hole {hole.mean():.1%} of the image"], gt.shape[0])]))
    return np.vstack([np.pad(r, ((0, 4), (0, 0), (0, 0)), constant_values=255) for r in rows])


def contact_sheet(preset: str, n: int = 4, seed: int = 0, scale: int = 4) -> np.ndarray:
    """The sheet as an RGB uint8 image (rows: GT | LQ | target | parameters)."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    if preset in VIDEO_PRESETS:
        return clip_sheet(n=n, seed=seed, scale=scale)
    if preset in MASK_PRESETS:
        return mask_sheet(preset, n=n, seed=seed)
    if preset not in PRESETS:
        known = ", ".join(sorted(PRESETS) + list(MASK_PRESETS))
        raise ValueError(f"unknown degradation preset {preset!r}; known: {known}")
    gt_size = 400 if preset == "realesrgan" else TILE
    rows = []
    for i in range(n):
        rng = sample_rng(seed, 0, f"preview-{i}")
        gt = _crop(_photo(PHOTOS[i % len(PHOTOS)]), gt_size, rng).astype(np.float32) / 255
        lq, target, lines = _sample(preset, gt, scale, rng)
        show = lambda img: cv2.resize(  # noqa: E731 - a display helper
            (np.clip(img, 0, 1) * 255).round().astype(np.uint8), (TILE, TILE), interpolation=cv2.INTER_NEAREST
        )
        tiles = [_label(show(gt), "GT"), _label(show(lq), f"LQ {lq.shape[1]}x{lq.shape[0]}")]
        if target is not gt:
            tiles.append(_label(show(target), "target (USM GT)"))
        rows.append(np.hstack(tiles + [_text_panel(lines, TILE)]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.vstack(rows)


def write_preview(preset: str, out: str, n: int = 4, seed: int = 0) -> Path:
    sheet = contact_sheet(preset, n=n, seed=seed)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"{out}: could not write a PNG there")
    return path
