"""The image SR family's device stage for ``degradation.device: gpu``.

With ``device: gpu`` the Ray Data actors do not degrade: for every sample they ship the
augmented GT patch (uint8, ``gt_size``), the Real-ESRGAN parameters drawn for it by the
shared sampler (``realesrgan.sample_params`` with the sample's generator from
(seed, epoch, key), packed by ``realesrgan.pack_params`` into a float64 vector) and the
LQ corner of the final paired crop (drawn by ``realesrgan.paired_crop_corner`` from the
same generator). Here the batch is degraded by ``degradations.torch_path.apply_batch``
on the worker's device -- CUDA when the worker has a GPU, CPU torch otherwise: ``gpu``
means "in the training worker, on its device" -- then cropped and quantised.

Same semantics as ``device: cpu`` for the same sample: the same parameters and crop
(the draws happen in the same order from the same generator), the unsharp-masked GT as
``gt_usm`` beside the plain ``gt``, quantised to 8 bits as the stream quantises it. What
differs is the noise realisation (a torch generator seeded with the sample's ``noise_seed``,
instead of numpy's stream) and float rounding (``torch_path``'s docstring). The noise
seed comes from the sample's own generator, so a resumed run (on the same kind of
device) sees the same degradations, whatever the step, rank or batch a sample lands in.
"""

from __future__ import annotations

import torch

from degradations.realesrgan import unpack_params
from degradations.torch_path import apply_batch


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid, as every image the stream ships is."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


class DeviceDegradation:
    """Turns a stream batch ``{"gt", "params", "crop"}`` into ``{"lq", "gt", "gt_usm"}`` on its device.

    Args:
        scale: LQ downscale factor.
        out_size: GT size of the final paired crop (None: no crop).
        jpeg: ``apply_batch``'s JPEG route (``auto``: libjpeg on CPU, the torch codec on
            GPU; bit-identical pixels).
    """

    def __init__(self, scale: int, out_size: int | None, jpeg: str = "auto"):
        self.scale, self.out_size, self.jpeg = int(scale), out_size, jpeg

    @torch.no_grad()
    def __call__(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        gt = raw["gt"].permute(0, 3, 1, 2).float().div_(255.0)  # uint8 NHWC -> float NCHW, on device
        params = [unpack_params(v) for v in raw["params"].detach().cpu().double().numpy()]
        out = apply_batch(gt, params, scale=self.scale, jpeg=self.jpeg)
        batch = {"lq": out["lq"], "gt": gt, "gt_usm": quantise(out["gt"])}
        if self.out_size:
            batch = self._crop(batch, raw["crop"].detach().cpu().tolist())
        return {k: v.contiguous() for k, v in batch.items()}

    def _crop(self, batch: dict[str, torch.Tensor], corners: list[list[int]]) -> dict[str, torch.Tensor]:
        """Paired crop at the drawn LQ corners: LQ ``out_size / scale``, GT-sized images ``out_size``."""
        s, size = self.scale, int(self.out_size)
        n = size // s
        out = {}
        for key, x in batch.items():
            if key == "lq":
                out[key] = torch.stack([x[i, :, t : t + n, l : l + n] for i, (t, l) in enumerate(corners)])
            else:
                out[key] = torch.stack([x[i, :, t * s : t * s + size, l * s : l * s + size]
                                        for i, (t, l) in enumerate(corners)])
        return out
