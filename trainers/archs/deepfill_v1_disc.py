"""DeepFill v1 critics: a global and a local WGAN critic, from Yu et al., "Generative Image
Inpainting with Contextual Attention", CVPR 2018 (the global + local pair follows Iizuka et
al., "Globally and Locally Consistent Image Completion", SIGGRAPH 2017, but the two are
separate critics, not one joint classifier).

Zoo configs: the discriminator (``disc.`` in the checkpoint) of
``deepfillv1_256x256_8x2_places`` and ``deepfillv1_256x256_4x4_celeba`` (same network):
7,072,770 parameters.

Structure as MMEditing 0.x's ``DeepFillv1Discriminators``: ``global_disc`` and
``local_disc``, each a ``MultiLayerDiscriminator`` of four 5x5 stride-2 convs (zero padding
2, bias, ELU; widths 64-128-256-256 for the global one, 64-128-256-512 for the local one),
the map flattened into ``fc`` (one output) and a LeakyReLU(0.2) on that score. The linear
layers fix the input sizes: 256x256 images (256 x 16 x 16 = 65,536 features) and 128x128
local patches (512 x 8 x 8 = 32,768). No normalisation, no spectral norm: the WGAN-GP
critic is Lipschitz-constrained by the gradient penalty (see ``deepfill_v1`` for how the
inpaintor uses it). Convs and linears start N(0, 0.02) with zero bias (the zoo's init).
"""

from torch import Tensor, nn

from trainers.archs.deepfill_blocks import MultiLayerDiscriminator


class DeepFillv1Discriminators(nn.Module):
    """Global critic for whole images and local critic for the patch around the hole.

    Args:
        in_channels: Image channels (both critics).
        num_convs: Stride-2 convs per critic.
        global_max_channels: Width cap of the global critic.
        global_fc_in_channels: Flattened conv output of the global critic (fixes its input
            size: ``min(64 * 2**(n-1), cap) * (H / 2**n) * (W / 2**n)``).
        local_max_channels: Width cap of the local critic.
        local_fc_in_channels: Flattened conv output of the local critic.
        fc_out_channels: Scores per image of each critic.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_convs: int = 4,
        global_max_channels: int = 256,
        global_fc_in_channels: int = 256 * 16 * 16,
        local_max_channels: int = 512,
        local_fc_in_channels: int = 512 * 8 * 8,
        fc_out_channels: int = 1,
    ):
        super().__init__()

        def critic(max_channels: int, fc_in_channels: int) -> MultiLayerDiscriminator:
            return MultiLayerDiscriminator(
                in_channels,
                max_channels,
                num_convs=num_convs,
                fc_in_channels=fc_in_channels,
                fc_out_channels=fc_out_channels,
                act=nn.ELU,
                out_act=lambda: nn.LeakyReLU(0.2),
            )

        self.global_disc = critic(global_max_channels, global_fc_in_channels)
        self.local_disc = critic(local_max_channels, local_fc_in_channels)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor | tuple[Tensor, Tensor], local_img: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Scores the whole image and the local patch.

        Called as mmedit does, with one ``(global_img, local_img)`` tuple, or with the two
        tensors as separate arguments.

        Args:
            x: ``[B, C, 256, 256]`` images, or the ``(global_img, local_img)`` pair.
            local_img: ``[B, C, 128, 128]`` patches around the holes, when ``x`` is a tensor.

        Returns:
            ``(global_pred, local_pred)``, ``[B, fc_out_channels]`` each.

        Raises:
            TypeError: If only one tensor is given.
        """
        if local_img is None:
            if isinstance(x, Tensor):
                raise TypeError("DeepFillv1Discriminators needs the local patches too: model((img, patch))")
            x, local_img = x
        return self.global_disc(x), self.local_disc(local_img)
