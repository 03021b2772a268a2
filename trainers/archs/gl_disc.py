"""The global and local discriminators of Iizuka et al., "Globally and Locally Consistent Image
Completion", SIGGRAPH 2017, as one module (the generator: ``gl``).

Zoo configs: the discriminator of ``gl_256x256_8x12_places`` and ``gl_256x256_8x12_celeba``
(defaults here; 45,060,225 parameters, 33.6M of them in the two fully connected layers).

Structure as in MMEditing 0.x (``GLDiscs`` of two ``MultiLayerDiscriminator``):

* ``global_disc`` judges the whole 256x256 image, ``local_disc`` the 128x128 patch around the
  hole; each is ``conv1..conv<n>`` (5x5, stride 2, padding 2, widths ``min(64 * 2**i,
  max_channels)``, BN + ReLU, the first included) followed by ``fc`` (flatten ->
  ``fc_out_channels``, bias, ReLU). Six convs take 256 px and five take 128 px to 4x4, hence
  ``fc_in_channels = 512 * 4 * 4``;
* ``fc`` maps the concatenated ``[global, local]`` features (2 x 1024) to one logit per image
  (mmedit fixes that layer at 2048 inputs; here it is ``2 * fc_out_channels``, equal in the zoo).

Init as mmedit's: convs Kaiming (mmcv's ``fan_out``), BN 1/0, every linear layer N(0, 0.02)
with zero bias. The zoo uses SyncBN; see :mod:`trainers.archs.conv_module`. How the inpaintor
crops the local patch and schedules the two networks: :mod:`trainers.archs.gl`.

Only the options Global&Local uses are built (mmedit's ``MultiLayerDiscriminator`` also has
spectral norm, output convs and fc-less variants for other models).
"""

import torch
from torch import Tensor, nn

from trainers.archs.conv_module import ConvNormAct


class LinearReLU(nn.Module):
    """``linear`` then ReLU (mmedit's ``LinearModule``; the attribute name is in the checkpoint keys)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.linear(x))


class MultiLayerDiscriminator(nn.Module):
    """Stride-2 5x5 convs then a fully connected layer, both ReLU-activated.

    Args:
        in_channels: Image channels.
        max_channels: Cap on the widths ``64, 128, 256, ...``.
        num_convs: Number of stride-2 convs.
        fc_in_channels: Flattened size after the convs (width x height x width of the last map).
        fc_out_channels: Output features.
        with_norm: Batch norm after every conv.
    """

    def __init__(
        self, in_channels: int, max_channels: int, num_convs: int, fc_in_channels: int, fc_out_channels: int,
        with_norm: bool,
    ):
        super().__init__()
        self.num_convs = num_convs
        self.fc_in_channels = fc_in_channels
        cin = in_channels
        for i in range(num_convs):
            cout = min(64 * 2**i, max_channels)
            self.add_module(f"conv{i + 1}", ConvNormAct(cin, cout, 5, stride=2, padding=2, norm=with_norm))
            cin = cout
        self.fc = LinearReLU(fc_in_channels, fc_out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> ``[B, fc_out_channels]``.

        Raises:
            ValueError: If the conv output does not flatten to ``fc_in_channels`` (wrong input size).
        """
        for i in range(self.num_convs):
            x = getattr(self, f"conv{i + 1}")(x)
        x = x.flatten(1)
        if x.shape[1] != self.fc_in_channels:
            raise ValueError(
                f"input flattens to {x.shape[1]} features after {self.num_convs} stride-2 convs, "
                f"fc_in_channels is {self.fc_in_channels} (wrong image or patch size?)"
            )
        return self.fc(x)


class GLDiscs(nn.Module):
    """Global + local discriminator: ``(image, local patch)`` -> one real/fake logit per image.

    Args:
        in_channels: Image channels.
        max_channels: Width cap of both discriminators' convs.
        global_num_convs: Stride-2 convs of the global discriminator (6 for 256 px).
        local_num_convs: Stride-2 convs of the local discriminator (5 for 128 px).
        global_fc_in_channels: Flattened size of the global conv output (512 x 4 x 4 for 256 px).
        local_fc_in_channels: Flattened size of the local conv output (512 x 4 x 4 for 128 px).
        fc_out_channels: Features each discriminator contributes to the final ``fc``.
        with_norm: Batch norm after every conv (the zoo's ``norm_cfg=SyncBN``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        max_channels: int = 512,
        global_num_convs: int = 6,
        local_num_convs: int = 5,
        global_fc_in_channels: int = 512 * 4 * 4,
        local_fc_in_channels: int = 512 * 4 * 4,
        fc_out_channels: int = 1024,
        with_norm: bool = True,
    ):
        super().__init__()
        self.global_disc = MultiLayerDiscriminator(
            in_channels, max_channels, global_num_convs, global_fc_in_channels, fc_out_channels, with_norm
        )
        self.local_disc = MultiLayerDiscriminator(
            in_channels, max_channels, local_num_convs, local_fc_in_channels, fc_out_channels, with_norm
        )
        self.fc = nn.Linear(2 * fc_out_channels, 1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, global_img: Tensor | tuple[Tensor, Tensor], local_img: Tensor | None = None) -> Tensor:
        """Logits ``[B, 1]`` for image/patch pairs.

        mmedit calls ``disc((img, patch))`` with one tuple; ``disc(img, patch)`` is accepted too.

        Args:
            global_img: Whole images ``[B, C, H, W]``, or the ``(images, patches)`` tuple.
            local_img: Patches around the holes ``[B, C, h, w]`` (when not in the tuple).
        """
        if local_img is None:
            global_img, local_img = global_img
        feats = torch.cat([self.global_disc(global_img), self.local_disc(local_img)], dim=1)
        return self.fc(feats)
