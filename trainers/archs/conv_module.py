"""The conv -> batch norm -> activation unit of MMEditing 0.x's inpainting networks (not an architecture).

MMEditing builds Global&Local, PConv and AOT-GAN (generators and discriminators) from
mmcv's ``ConvModule``. What matters for the zoo checkpoints is its attribute names: the
convolution is ``conv`` and the norm layer ``bn``, so a layer's weights are stored as
``<layer>.conv.weight`` / ``<layer>.bn.running_mean``; the activation has no weights.
:class:`ConvNormAct` keeps those names and mmcv's rules for the options these networks use:

* the conv has a bias exactly when there is no norm layer (BN's shift makes it redundant);
* ``transposed`` builds a ``ConvTranspose2d`` (mmcv's ``Deconv``);
* ``spectral_norm`` wraps the conv in ``torch.nn.utils.spectral_norm`` (one power
  iteration per training forward), which turns ``conv.weight`` into
  ``conv.weight_orig`` / ``weight_u`` / ``weight_v`` in the state dict;
* init as mmcv's: Kaiming-normal in ``fan_out`` mode with the gain of the activation that
  follows (LeakyReLU slope 0.2, otherwise ReLU), zero bias, BN scale 1 and shift 0.

Batch norm is always ``nn.BatchNorm2d``. The zoo configs ask for ``SyncBN`` (batch
statistics over all GPUs); that is a property of the training run, not of the weights
(the state-dict keys are the same), so a multi-GPU trainer converts with
``nn.SyncBatchNorm.convert_sync_batchnorm``. SyncBN cannot run on CPU process groups,
which is why it is not built in here.
"""

from typing import Literal

from torch import Tensor, nn

Activation = Literal["relu", "lrelu"] | None
LRELU_SLOPE = 0.2  # the only LeakyReLU slope these networks use


def activation(act: Activation) -> nn.Module | None:
    """The activation module for ``act`` (in place, as mmcv's), or None."""
    if act is None:
        return None
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "lrelu":
        return nn.LeakyReLU(LRELU_SLOPE, inplace=True)
    raise ValueError(f"unknown activation {act!r}; known: 'relu', 'lrelu', None")


def mmcv_conv_init_(conv: nn.Module, act: Activation) -> None:
    """mmcv's default init of a ConvModule's conv: Kaiming-normal, ``fan_out``, zero bias.

    Works on a conv under spectral norm too, as long as no forward has run yet: its
    ``weight`` attribute is then the storage of ``weight_orig``.
    """
    slope = LRELU_SLOPE if act == "lrelu" else 0.0
    nonlinearity = "leaky_relu" if act == "lrelu" else "relu"
    nn.init.kaiming_normal_(conv.weight, a=slope, mode="fan_out", nonlinearity=nonlinearity)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ConvNormAct(nn.Module):
    """Conv (or transposed conv), optional batch norm, optional activation.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Conv stride.
        padding: Zero padding of the conv.
        dilation: Conv dilation.
        norm: Add ``bn`` (BatchNorm2d) after the conv; the conv then has no bias unless
            ``bias`` says otherwise.
        act: ``"relu"``, ``"lrelu"`` (slope 0.2) or None.
        bias: Conv bias; None means mmcv's ``"auto"`` (bias exactly when ``norm`` is off).
        transposed: Build a ``ConvTranspose2d`` instead of a ``Conv2d``.
        spectral_norm: Wrap the conv in spectral normalisation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        *,
        norm: bool = False,
        act: Activation = "relu",
        bias: bool | None = None,
        transposed: bool = False,
        spectral_norm: bool = False,
    ):
        super().__init__()
        bias = not norm if bias is None else bias
        conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.conv = conv_cls(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, bias=bias)
        mmcv_conv_init_(self.conv, act)
        if spectral_norm:
            self.conv = nn.utils.spectral_norm(self.conv)
        self.bn = nn.BatchNorm2d(out_channels) if norm else None
        self.activate = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        """conv, then BN and the activation where present."""
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activate is not None:
            x = self.activate(x)
        return x
