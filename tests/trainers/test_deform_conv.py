"""trainers/archs/deform_conv.py against a loop-by-loop transcription of mmcv's DCNv2 definition.

The reference below walks output pixels and kernel taps in python (vectorised over channels
only) and samples with the CUDA kernel's rule as written there: a point with ``y <= -1``,
``y >= H``, ``x <= -1`` or ``x >= W`` gives 0, otherwise bilinear with the corners off the
image counting as 0. Its gradients come from autograd through that transcription, which is
the definition of the gradient mmcv's hand-written backward computes. All in float64.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from trainers.archs import deform_conv as dc
from trainers.archs.deform_conv import (
    ModulatedDeformConv2d,
    ModulatedDeformConv2dPack,
    deform_conv2d,
    deform_conv_backend,
    modulated_deform_conv2d,
)


def _sample(img, y, x):
    """img [C, H, W] at float pixel (y, x) (0-d tensors), mmcv's boundary rule."""
    _, h, w = img.shape
    if y.item() <= -1 or y.item() >= h or x.item() <= -1 or x.item() >= w:
        return img.new_zeros(img.shape[0])
    y0, x0 = math.floor(y.item()), math.floor(x.item())
    ly, lx = y - y0, x - x0
    out = img.new_zeros(img.shape[0])
    for yy, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yy < h and 0 <= xx < w:
                out = out + wy * wx * img[:, yy, xx]
    return out


def _reference(x, offset, mask, weight, bias, stride, padding, dilation, groups, dg):
    b, c, h, w = x.shape
    o, cpg, kh, kw = weight.shape
    ho, wo = offset.shape[2:]
    cg = c // dg
    out = []
    for n in range(b):
        plane = []
        for i in range(ho):
            for j in range(wo):
                taps = []  # per tap, the C sampled and masked channels
                for ki in range(kh):
                    for kj in range(kw):
                        k = ki * kw + kj
                        chans = []
                        for g in range(dg):
                            ch = g * 2 * kh * kw + 2 * k  # dy of tap k in group g; dx follows
                            dy, dx = offset[n, ch, i, j], offset[n, ch + 1, i, j]
                            y = i * stride[0] - padding[0] + ki * dilation[0] + dy
                            xx = j * stride[1] - padding[1] + kj * dilation[1] + dx
                            v = _sample(x[n, g * cg : (g + 1) * cg], y, xx)
                            chans.append(v * mask[n, g * kh * kw + k, i, j])
                        taps.append(torch.cat(chans))
                col = torch.stack(taps, dim=1)  # [C, K]
                vals = []
                for gr in range(groups):
                    wg = weight[gr * (o // groups) : (gr + 1) * (o // groups)].reshape(o // groups, cpg, kh * kw)
                    vals.append((wg * col[gr * cpg : (gr + 1) * cpg]).sum(dim=(1, 2)))
                v = torch.cat(vals)
                plane.append(v if bias is None else v + bias)
        out.append(torch.stack(plane, dim=1).reshape(o, ho, wo))
    return torch.stack(out)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _case(b, c, o, h, w, k, stride, padding, dilation, groups, dg, off_scale, bias=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    kh, kw = _pair(k)
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    ho = (h + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    wo = (w + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    f64 = dict(dtype=torch.float64, generator=gen)
    x = torch.randn(b, c, h, w, **f64)
    offset = torch.randn(b, 2 * dg * kh * kw, ho, wo, **f64) * off_scale
    mask = torch.rand(b, dg * kh * kw, ho, wo, **f64)
    if not off_scale:
        mask = torch.ones_like(mask)
    weight = torch.randn(o, c // groups, kh, kw, **f64)
    bias_t = torch.randn(o, **f64) if bias else None
    return [x, offset, mask, weight, bias_t], (s, p, d, groups, dg)


CASES = {  # b, c, o, h, w, k, stride, padding, dilation, groups, deform_groups, offset scale
    "fractional_pad1": (1, 3, 2, 5, 6, 3, 1, 1, 1, 1, 1, 1.5),
    "far_outside": (1, 2, 2, 5, 5, 3, 1, 0, 1, 1, 1, 4.0),
    "stride2_pad0": (2, 2, 3, 7, 6, 3, 2, 0, 1, 1, 1, 1.0),
    "dilation2": (1, 2, 2, 7, 7, 3, 1, 1, 2, 1, 1, 1.0),
    "groups2": (1, 4, 4, 5, 6, 3, 1, 1, 1, 2, 1, 1.0),
    "deform_groups2": (2, 4, 3, 5, 5, 3, 1, 1, 1, 1, 2, 1.0),
    "mixed_rect": (1, 4, 2, 7, 6, (3, 2), (2, 1), (1, 0), (2, 1), 2, 2, 2.0),
}


def _grads(fn, tensors, args, seed):
    leaves = [t.clone().requires_grad_() if t is not None else None for t in tensors]
    out = fn(*leaves, *args)
    up = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(seed))
    used = [t for t in leaves if t is not None]
    return out.detach(), torch.autograd.grad((out * up).sum(), used)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_definition_values_and_grads(name):
    tensors, args = _case(*CASES[name])
    out, grads = _grads(lambda *a: modulated_deform_conv2d(*a, backend="torch"), tensors, args, 1)
    ref, ref_grads = _grads(_reference, tensors, args, 1)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for which, g, rg in zip(["input", "offset", "mask", "weight", "bias"], grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=1e-9, atol=1e-9, msg=lambda m, w=which: f"grad {w}: {m}")


@pytest.mark.parametrize("which", range(5))
def test_one_tensor_needing_grad(which):
    """The backward computes only what is asked for; each gradient alone equals the full run's."""
    tensors, args = _case(*CASES["mixed_rect"])
    _, full = _grads(lambda *a: modulated_deform_conv2d(*a, backend="torch"), tensors, args, 3)
    leaves = [t.clone().requires_grad_(i == which) for i, t in enumerate(tensors)]
    out = modulated_deform_conv2d(*leaves, *args, backend="torch")
    up = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(3))
    (g,) = torch.autograd.grad((out * up).sum(), [leaves[which]])
    torch.testing.assert_close(g, full[which], rtol=0, atol=0)


def test_output_takes_inplace_ops():
    """Networks follow the DCN with LeakyReLU(inplace=True); the output must not be a view."""
    tensors, args = _case(*CASES["groups2"])
    leaves = [t.clone().requires_grad_() for t in tensors]
    out = modulated_deform_conv2d(*leaves, *args, backend="torch")
    F.leaky_relu(out, 0.1, inplace=True).sum().backward()
    ref = F.leaky_relu(_reference(*tensors, *args), 0.1)
    torch.testing.assert_close(out.detach(), ref, rtol=1e-10, atol=1e-10)
    assert all(t.grad is not None for t in leaves)


def test_far_outside_case_reaches_outside():
    x, offset, *_ = _case(*CASES["far_outside"])[0]
    assert offset.abs().max() > 6  # some taps leave the 5x5 image by more than a pixel


def test_zero_offset_is_conv2d():
    (x, offset, mask, weight, bias), args = _case(2, 4, 6, 6, 7, 3, 1, 1, 1, 2, 2, 0.0)
    offset = offset * 0
    leaves = [t.clone().requires_grad_() for t in (x, mask, weight, bias)]
    out = modulated_deform_conv2d(leaves[0], offset, leaves[1], leaves[2], leaves[3], *args, backend="torch")
    conv_leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
    ref = F.conv2d(conv_leaves[0], conv_leaves[1], conv_leaves[2], 1, 1, 1, 2)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    up = torch.randn_like(ref)
    g = torch.autograd.grad((out * up).sum(), [leaves[0], leaves[2], leaves[3]])
    rg = torch.autograd.grad((ref * up).sum(), conv_leaves)
    for a, b in zip(g, rg):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_no_bias_matches_definition():
    tensors, args = _case(1, 2, 2, 5, 5, 3, 1, 1, 1, 1, 1, 1.0, bias=False)
    out = modulated_deform_conv2d(*tensors, *args, backend="torch")
    torch.testing.assert_close(out, _reference(*tensors, *args), rtol=1e-10, atol=1e-10)


def test_dcnv1_is_mask_one_without_bias():
    (x, offset, _, weight, _), args = _case(1, 4, 2, 5, 6, 3, 2, 1, 1, 2, 2, 1.5)
    ones = torch.ones(1, 2 * 9, *offset.shape[2:], dtype=torch.float64)
    want = _reference(x, offset, ones, weight, None, *args)
    torch.testing.assert_close(deform_conv2d(x, offset, weight, *args), want)


def test_gradcheck():
    tensors, args = _case(1, 2, 2, 4, 3, 2, 1, 0, 1, 1, 2, 1.3)
    leaves = tuple(t.clone().requires_grad_() for t in tensors)
    fn = lambda *a: modulated_deform_conv2d(*a, *args, backend="torch")  # noqa: E731
    assert torch.autograd.gradcheck(fn, leaves, fast_mode=True)


def test_float32_close_to_float64():
    tensors, args = _case(*CASES["mixed_rect"])
    ref = modulated_deform_conv2d(*tensors, *args, backend="torch")
    out = modulated_deform_conv2d(*[t.float() for t in tensors], *args, backend="torch")
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)


def test_module_init_and_forward():
    m = ModulatedDeformConv2d(4, 6, 3, padding=1, groups=2, deform_groups=2)
    assert (m.kernel_size, m.stride, m.padding, m.dilation) == ((3, 3), (1, 1), (1, 1), (1, 1))
    assert (m.in_channels, m.out_channels, m.groups, m.deform_groups) == (4, 6, 2, 2)
    assert m.weight.shape == (6, 2, 3, 3) and m.bias.abs().sum() == 0
    assert m.weight.abs().max() <= 1 / math.sqrt(4 * 9)
    assert ModulatedDeformConv2d(4, 4, 3, bias=False).bias is None
    x = torch.randn(1, 4, 5, 5)
    offset, mask = torch.randn(1, 36, 5, 5), torch.rand(1, 18, 5, 5)
    torch.testing.assert_close(
        m(x, offset, mask), modulated_deform_conv2d(x, offset, mask, m.weight, m.bias, 1, 1, 1, 2, 2)
    )


def test_pack_is_mmcv_dcnv2():
    m = ModulatedDeformConv2dPack(4, 6, 3, padding=1, deform_groups=2)
    assert sorted(m.state_dict()) == ["bias", "conv_offset.bias", "conv_offset.weight", "weight"]
    assert m.conv_offset.weight.shape == (2 * 3 * 9, 4, 3, 3)
    assert m.conv_offset.weight.abs().sum() == 0 and m.conv_offset.bias.abs().sum() == 0
    x = torch.randn(2, 4, 6, 5)
    # zero-initialised offsets: a plain conv with the mask at sigmoid(0) = 0.5
    torch.testing.assert_close(m(x), F.conv2d(x, m.weight * 0.5, m.bias, padding=1))
    torch.nn.init.normal_(m.conv_offset.weight, std=0.3)
    o1, o2, mk = torch.chunk(m.conv_offset(x), 3, dim=1)
    want = modulated_deform_conv2d(x, torch.cat((o1, o2), 1), torch.sigmoid(mk), m.weight, m.bias, 1, 1, 1, 1, 2)
    torch.testing.assert_close(m(x), want)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda t: t.__setitem__(0, t[0][0]), "4D"),
        (lambda t: t.__setitem__(1, t[1][:, :-2]), "offset"),
        (lambda t: t.__setitem__(2, t[2][:, :, :-1]), "mask"),
        (lambda t: t.__setitem__(3, t[3][:, :1]), "weight"),
    ],
)
def test_bad_shapes_raise(change, words):
    tensors, args = _case(1, 2, 2, 5, 5, 3, 1, 1, 1, 1, 1, 1.0)
    change(tensors)
    with pytest.raises(ValueError, match=words):
        modulated_deform_conv2d(*tensors, *args)


def test_bad_backend_and_groups_raise():
    tensors, args = _case(1, 2, 2, 5, 5, 3, 1, 1, 1, 1, 1, 1.0)
    with pytest.raises(ValueError, match="backend"):
        modulated_deform_conv2d(*tensors, *args, backend="cuda")
    with pytest.raises(ValueError, match="deform_groups"):
        ModulatedDeformConv2d(4, 4, 3, deform_groups=3)


def test_backend_is_named_and_cached():
    assert deform_conv_backend() in dc.BACKENDS
    hits = deform_conv_backend.cache_info().hits
    deform_conv_backend()
    assert deform_conv_backend.cache_info().hits == hits + 1  # the tiny trial call runs once per process


@pytest.mark.skipif(
    deform_conv_backend() != "torchvision",
    reason="torchvision.ops.deform_conv2d not usable here (not installed, or its C ops do not load)",
)
@pytest.mark.parametrize("name", ["mixed_rect", "deform_groups2", "stride2_pad0"])
def test_torchvision_backend_agrees(name):
    tensors, args = _case(*CASES[name])
    out, grads = _grads(lambda *a: modulated_deform_conv2d(*a, backend="torch"), tensors, args, 2)
    tv_out, tv_grads = _grads(lambda *a: modulated_deform_conv2d(*a, backend="torchvision"), tensors, args, 2)
    torch.testing.assert_close(tv_out, out, rtol=1e-9, atol=1e-9)
    for g, tg in zip(grads, tv_grads):
        torch.testing.assert_close(tg, g, rtol=1e-8, atol=1e-8)
