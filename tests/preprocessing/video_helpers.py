"""Small generated video datasets in the real directory layouts (REDS, Vimeo-90K, Vid4, VideoLQ)."""

from __future__ import annotations

import io
import tarfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from prep_helpers import png_bytes, rgb, write

HW = (32, 48)


def frame(t: int, seed: int, hw=HW) -> np.ndarray:
    return rgb(*hw, seed=1000 * seed + t)


def lr(img: np.ndarray, scale: int) -> np.ndarray:
    return cv2.resize(img, (img.shape[1] // scale, img.shape[0] // scale), interpolation=cv2.INTER_AREA)


def write_clip(gt_dir: Path, lq_dir: Path | None, n: int, seed: int, scale: int = 4, hw=HW,
               name="{:08d}.png", start: int = 0) -> list[np.ndarray]:
    """``n`` GT frames under ``gt_dir`` (and their x``scale`` LR under ``lq_dir``); returns the GT frames."""
    frames = []
    for t in range(n):
        img = frame(t, seed, hw)
        write(gt_dir / name.format(t + start), png_bytes(img))
        if lq_dir is not None:
            write(lq_dir / name.format(t + start), png_bytes(lr(img, scale)))
        frames.append(img)
    return frames


def make_reds(root: Path, train=("000", "001", "011"), val=("000", "001"), n=3, hw=HW) -> dict:
    """REDS: train_sharp/<clip>/<8-digit>.png + train_sharp_bicubic/X4, val_sharp (+ bicubic) as released."""
    out = {}
    for i, clip in enumerate(train):
        out[clip] = write_clip(root / "train_sharp" / clip, root / "train_sharp_bicubic/X4" / clip, n, i, hw=hw)
    for i, clip in enumerate(val):
        out[f"{int(clip) + 240:03d}"] = write_clip(root / "val_sharp" / clip, root / "val_sharp_bicubic/X4" / clip,
                                                   n, 100 + i, hw=hw)
    return out


def make_vimeo(root: Path, train=("00001/0001", "00001/0002"), test=("00002/0001",), lq_dir="sequences_BIx4",
               n=7, lists="sep", hw=HW) -> dict:
    """Vimeo-90K septuplets: sequences/<a>/<b>/im1..im7.png, sep_trainlist.txt, sep_testlist.txt
    (``n=3, lists="tri", lq_dir=""``: the interpolation triplets with tri_trainlist/tri_testlist)."""
    out = {}
    for i, seq in enumerate(train + test):
        out[seq] = write_clip(root / "sequences" / seq, root / lq_dir / seq if lq_dir else None, n, i,
                              name="im{}.png", start=1, hw=hw)
    write(root / f"{lists}_trainlist.txt", ("\n".join(train) + "\n").encode())
    write(root / f"{lists}_testlist.txt", ("\n".join(test) + "\n").encode())
    return out


def make_gt_lq(root: Path, clips=("calendar", "city"), lq_dirs=("BIx4", "BDx4"), n=4) -> dict:
    """Vid4 / UDM10: GT/<clip>/<frame>.png with BIx4/ and BDx4/ beside it."""
    out = {}
    for i, clip in enumerate(clips):
        out[clip] = write_clip(root / "GT" / clip, None, n, i)
        for d in lq_dirs:
            for t, img in enumerate(out[clip]):
                write(root / d / clip / f"{t:08d}.png", png_bytes(lr(img, 4)))
    return out


def make_mp4(path: Path, n: int = 12, hw=(32, 48), fps: Fraction = Fraction(25)) -> list[np.ndarray]:
    """An H.264 mp4 of ``n`` generated frames (smooth gradients that survive compression)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    frames = [np.stack([(xx * 5 + 10 * t) % 256, (yy * 7) % 256, np.full(hw, 20 * t % 256)], -1).astype(np.uint8)
              for t in range(n)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = hw[1], hw[0], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return frames


def tar_members(path) -> dict[str, bytes]:
    """Every member of a tar by name."""
    with tarfile.open(fileobj=io.BytesIO(Path(path).read_bytes())) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
