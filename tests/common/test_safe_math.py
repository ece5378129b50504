"""common.safe_math.matmul: exact float32 products whatever the TF32 / matmul-precision flags."""

import pytest
import torch

from common import safe_math


@pytest.mark.parametrize('shape_a, shape_b', [
    ((4096, 3), (3, 21)),          # coord.lift_and_diagonalize: means onto the IPE basis
    ((512, 3, 3), (3, 21)),        # ... and covariances onto it
    ((64, 8, 3, 3), (3, 1)),       # ray casting: a rotation per ray
    ((256, 17), (17, 16)),         # ref_utils: powers of z onto the spherical-harmonic table
])
def test_matmul_is_float32_exact_under_low_precision_flags(low_precision_flags, shape_a, shape_b):
    gen = torch.Generator().manual_seed(0)
    # Large entries, like the 2^11 scale of the top IPE octave, make any mantissa loss visible.
    a = torch.randn(shape_a, generator=gen) * 2.0**11
    b = torch.randn(shape_b, generator=gen)
    exact = a.double() @ b.double()
    out = safe_math.matmul(a, b)
    assert out.dtype == torch.float32 and out.shape == exact.shape
    k = shape_a[-1]
    # Within float32 rounding of a k-term dot product: k units of the largest term's rounding.
    bound = k * torch.finfo(torch.float32).eps * (a.double().abs()[..., :, :, None]
                                                  * b.double().abs()[..., None, :, :]).sum(-2)
    assert torch.all((out.double() - exact).abs() <= bound)


def test_matmul_stays_float32_inside_bf16_autocast():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(32, 3, generator=gen), torch.randn(3, 21, generator=gen)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
        out = safe_math.matmul(a, b)
        bf16_in = safe_math.matmul(a.bfloat16(), b)
    assert out.dtype == torch.float32 and bf16_in.dtype == torch.float32
    torch.testing.assert_close(out, (a.double() @ b.double()).float(), rtol=1e-6, atol=1e-6)


def test_matmul_gradients_match_torch_matmul():
    a = torch.randn(5, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(safe_math.matmul, (a, b))
    torch.testing.assert_close(safe_math.matmul(a, b), a @ b)


@pytest.mark.parametrize('shape_a, shape_b', [
    ((3,), (3, 21)),               # one Gaussian's mean onto the IPE basis
    ((5, 4, 3), (3,)),             # a batch of matrices times one vector
    ((3,), (3,)),                  # a dot product
    ((17,), (2, 17, 16)),          # a row broadcast against a batch of matrices
])
def test_matmul_takes_1d_operands_as_torch_and_jnp_matmul_do(shape_a, shape_b):
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(shape_a, generator=gen, dtype=torch.float64)
    b = torch.randn(shape_b, generator=gen, dtype=torch.float64)
    out = safe_math.matmul(a, b)
    expected = torch.matmul(a, b)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)
