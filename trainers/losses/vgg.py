"""torchvision's VGG16/VGG19 convolutional stacks, for perceptual losses, loaded from a local file or URI.

The zoo's perceptual losses (SRGAN, ESRGAN, Real-ESRGAN, RealBasicVSR, GLEAN, TTSR,
PConv, AOT-GAN) compare features of torchvision's ImageNet VGG. The stack here is
built layer for layer as torchvision's ``features`` (3x3 convs with padding 1,
in-place ReLUs, 2x2 max-pools), so its state-dict keys are torchvision's
(``features.N.weight``) and a layer index means what it means in an mmedit config:
``'34'`` in VGG19 is conv5_4, *before* its ReLU.

Weights are never downloaded implicitly: the caller names a file (local path,
``s3://`` URI (the project's S3 client), or an explicit ``https://`` URL) holding
torchvision's own ``vgg16-397923af.pth`` / ``vgg19-dcbb9e9d.pth`` format (a full VGG
state dict; the classifier is ignored). The file's sha256 is checked, so a
truncated or substituted file fails at start-up rather than silently training
against wrong features.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from collections.abc import Collection
from pathlib import PurePosixPath
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from trainers.checkpoint_io import CheckpointError, _read_bytes, load_strict, safe_torch_load

# torchvision's cfgs "D" (VGG16) and "E" (VGG19): output channels per conv, "M" for a max-pool.
VGG_CFGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}
TORCHVISION_URLS = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
}
_HASH_SUFFIX = re.compile(r"-([0-9a-f]{8,64})\.pth?$")  # torchvision's "<name>-<sha256 prefix>.pth"


def vgg_layers(vgg_type: str) -> list[nn.Module]:
    """All layers of torchvision's ``features`` for ``vgg_type``, freshly initialised, in order."""
    if vgg_type not in VGG_CFGS:
        raise ValueError(f"unknown vgg_type {vgg_type!r}; known: {', '.join(VGG_CFGS)}")
    layers: list[nn.Module] = []
    channels = 3
    for v in VGG_CFGS[vgg_type]:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = v
    return layers


class VGGFeatures(nn.Module):
    """The first ``num_layers`` layers of a torchvision VGG ``features`` stack, frozen.

    Parameters never train and the module stays in eval mode whatever ``train()`` is
    called with (the stack has no dropout or batch norm, so this only keeps intent
    clear and makes ``model.train()`` on an enclosing task harmless).

    Args:
        vgg_type: ``'vgg16'`` or ``'vgg19'``.
        num_layers: How many layers to keep: one more than the deepest index a loss reads.
    """

    def __init__(self, vgg_type: str, num_layers: int):
        super().__init__()
        layers = vgg_layers(vgg_type)
        if not 1 <= num_layers <= len(layers):
            raise ValueError(f"{vgg_type} has layers 0..{len(layers) - 1}; cannot keep {num_layers}")
        self.vgg_type = vgg_type
        self.features = nn.Sequential(*layers[:num_layers])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        return super().train(False)

    def forward(self, x: Tensor, indices: Collection[int]) -> dict[int, Tensor]:
        """Runs the stack and returns the output of each layer in ``indices``, keyed by index.

        Outputs are copies: the in-place ReLU after a conv would otherwise overwrite a
        pre-activation feature that was asked for (mmedit clones for the same reason).
        """
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in indices:
                out[i] = x.clone()
        return out


def _weights_error(field: str, vgg_type: str, problem: str) -> ValueError:
    url = TORCHVISION_URLS[vgg_type]
    return ValueError(
        f"{field}: {problem}; the {vgg_type} perceptual loss needs torchvision's ImageNet weights: "
        f"get {url} and set {field} to its local path (or an s3:// or https:// URI)"
    )


def _fetch(uri: str, field: str, vgg_type: str) -> bytes:
    """Reads the file's bytes from a local path, ``s3://``/``file://`` URI, or an explicit http(s) URL."""
    try:
        if urlparse(uri).scheme in ("http", "https"):
            with urllib.request.urlopen(uri, timeout=60) as response:
                return response.read()
        return _read_bytes(uri)
    except CheckpointError as err:  # it names the path: "checkpoint not found: ..."
        raise _weights_error(field, vgg_type, str(err)) from err
    except OSError as err:  # urllib.error.URLError is an OSError
        raise _weights_error(field, vgg_type, f"cannot read {uri}: {str(err).splitlines()[0]}") from err


def check_sha256(data: bytes, name: str, expected: str | None, field: str) -> None:
    """Checks ``data`` against ``expected``, or against torchvision's hash suffix in ``name``.

    Args:
        data: The file's bytes.
        name: The file name; ``vgg19-dcbb9e9d.pth`` means the sha256 starts with ``dcbb9e9d``.
        expected: Full hex sha256 to require; ``None`` falls back to the name's suffix,
            and a name without one is not checked.
        field: Config field path, for the error message.

    Raises:
        ValueError: One line naming the field, the file and both digests.
    """
    digest = hashlib.sha256(data).hexdigest()
    if expected is not None:
        ok, want = digest == expected.lower(), expected.lower()
    else:
        match = _HASH_SUFFIX.search(name)
        if match is None:
            return
        ok, want = digest.startswith(match.group(1)), f"{match.group(1)}... (from the file name)"
    if not ok:
        raise ValueError(f"{field}: {name} has sha256 {digest}, expected {want}: a wrong or corrupt file")


def read_torchvision_state(uri: str | os.PathLike, vgg_type: str, *, field: str,
                           sha256: str | None = None) -> dict[str, Tensor]:
    """Reads a torchvision VGG weight file and returns its ``features.*`` tensors.

    Args:
        uri: Local path, ``file://``/``s3://`` URI, or ``https://`` URL.
        vgg_type: ``'vgg16'`` or ``'vgg19'`` (only for the error message's download hint).
        field: Config field path that named ``uri``, for error messages.
        sha256: Expected full sha256; see :func:`check_sha256` for the default.

    Raises:
        ValueError: One line naming ``field`` if the file is missing, unreadable,
            has the wrong hash, or is not a torchvision VGG state dict.
    """
    uri = os.fspath(uri)
    data = _fetch(uri, field, vgg_type)
    check_sha256(data, PurePosixPath(urlparse(uri).path).name, sha256, field)
    try:
        state = safe_torch_load(data, uri)
    except CheckpointError as err:
        raise ValueError(f"{field}: {err}") from None
    features = {k: v for k, v in state.items() if k.startswith("features.")} if isinstance(state, dict) else {}
    if not features:
        raise ValueError(f"{field}: {uri} holds no 'features.*' tensors: not a torchvision VGG state dict")
    return features


def load_vgg_features(vgg_type: str, num_layers: int, weights: str | os.PathLike | None = None, *,
                      field: str, sha256: str | None = None,
                      allow_random_init: bool = False) -> VGGFeatures:
    """Builds a frozen :class:`VGGFeatures` and loads torchvision's weights into it.

    Args:
        vgg_type: ``'vgg16'`` or ``'vgg19'``.
        num_layers: Layers to keep (deepest index used + 1).
        weights: Where the torchvision weight file is (see :func:`read_torchvision_state`).
        field: Config field path of ``weights`` (e.g. ``task.perceptual.vgg_weights``), named in errors.
        sha256: Expected sha256 of the file.
        allow_random_init: Without ``weights``, keep random weights instead of failing. For
            tests only: a perceptual loss on random features trains nothing like the zoo.

    Raises:
        ValueError: One line naming ``field`` when the weights are not set (and random init
            is not allowed), cannot be read, fail the hash check, or do not fit.
    """
    module = VGGFeatures(vgg_type, num_layers)
    if weights is None or os.fspath(weights) == "":
        if allow_random_init:
            return module
        raise _weights_error(field, vgg_type, "not set")
    state = read_torchvision_state(weights, vgg_type, field=field, sha256=sha256)
    wanted = module.state_dict().keys()
    try:
        load_strict(module, {k: v for k, v in state.items() if k in wanted})
    except CheckpointError as err:
        raise ValueError(f"{field}: {os.fspath(weights)}: {err}") from err
    return module
