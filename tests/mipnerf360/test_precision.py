"""multinerf's full-precision products (math.matmul at Precision.HIGHEST) stay exact float32 in the
port whatever Config.use_tf32 sets: the IPE projection, the integrated directional encoding, ray
casting and colour correction, each against the same computation in float64, under TF32 and
float32 matmul precision 'medium' (the `low_precision_flags` fixture), on the CPU and on CUDA where
there is one. With TF32's 10-bit mantissas the projected means would be off by ~1e-3 relative, which
the top IPE octave (2^11) turns into phase errors of whole radians; these tests allow float32
rounding only."""

import pytest
import torch

from mipnerf360.internal import camera_utils, coord, geopoly, image, ref_utils

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
EPS32 = torch.finfo(torch.float32).eps


def _float32_vs_float64(fn, *inputs64, device):
    """fn on float32 copies of inputs64 on device (flags as set) and on inputs64 in float64 (CPU)."""
    low = fn(*[x.float().to(device) for x in inputs64])
    high = fn(*inputs64)
    return low, high


@pytest.mark.parametrize("device", DEVICES)
def test_ipe_projection_is_float32_exact(low_precision_flags, device):
    gen = torch.Generator().manual_seed(0)
    basis = torch.from_numpy(geopoly.generate_basis("icosahedron", 2).T.copy()).double()
    mean = 4 * torch.rand(256, 32, 3, generator=gen, dtype=torch.float64) - 2
    a = torch.randn(256, 32, 3, 3, generator=gen, dtype=torch.float64)
    cov = 1e-3 * a @ a.transpose(-1, -2)
    (mean32, var32), (mean64, var64) = _float32_vs_float64(
        coord.lift_and_diagonalize, mean, cov, basis, device=device)
    # Float32 rounding of a 3-term dot product: a few eps of sum |x_i b_i| (<= 2 sqrt(3) here).
    torch.testing.assert_close(mean32.double().cpu(), mean64, rtol=0, atol=8 * EPS32 * 2 * 3**0.5)
    torch.testing.assert_close(var32.double().cpu(), var64, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
def test_integrated_directional_encoding_is_float32_exact(low_precision_flags, device):
    gen = torch.Generator().manual_seed(1)
    xyz = torch.nn.functional.normalize(torch.randn(4096, 3, generator=gen, dtype=torch.float64), dim=-1)
    kappa_inv = torch.rand(4096, 1, generator=gen, dtype=torch.float64)
    ide = ref_utils.generate_ide_fn(5)
    low, high = _float32_vs_float64(ide, xyz, kappa_inv, device=device)
    # The z-polynomials of degree 16 have coefficients that cancel, so float32 rounding is relative
    # to the sum of |term| of each polynomial, not to its value: bound each entry by that sum.
    ml = ref_utils.get_ml_array(5)
    abs_terms = torch.zeros(xyz.shape[0], ml.shape[1], dtype=torch.float64)
    for i, (m, l) in enumerate(ml.T):
        for k in range(l - m + 1):
            abs_terms[:, i] += abs(ref_utils.sph_harm_coeff(l, m, k)) * xyz[:, 2].abs() ** k
    bound = 16 * EPS32 * abs_terms.repeat(1, 2) + 1e-6
    assert ((low.double().cpu() - high).abs() <= bound).all()


@pytest.mark.parametrize("device", DEVICES)
def test_spherical_ray_casting_is_float32_exact(low_precision_flags, device):
    gen = torch.Generator().manual_seed(2)
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    camtoworld = torch.cat([rotation, 100 * torch.randn(3, 1, generator=gen, dtype=torch.float64)], -1)

    def cast(c2w):
        rays = camera_utils.cast_spherical_rays(c2w, 24, 48, 0.0, 1.0)
        return rays.origins, rays.directions

    (origins32, dirs32), (origins64, dirs64) = _float32_vs_float64(cast, camtoworld, device=device)
    torch.testing.assert_close(dirs32.double().cpu(), dirs64, rtol=0, atol=8 * EPS32)
    torch.testing.assert_close(origins32.double().cpu(), origins64, rtol=2 * EPS32, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_colour_correction_product_is_float32_exact(low_precision_flags, device):
    gen = torch.Generator().manual_seed(3)
    ref = torch.rand(32, 32, 3, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    img = (ref**1.3 * 0.8 + 0.02).clamp(0, 1)
    low, high = _float32_vs_float64(image.color_correct, img, ref, device=device)
    # The least-squares fit itself runs in float64 numpy on both sides; only the rounding of the
    # float32 inputs and of the 10-term product of the warp remains.
    torch.testing.assert_close(low.double().cpu(), high, rtol=0, atol=2e-5)
