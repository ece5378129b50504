"""mipnerf360.internal.stepfun beyond the golden cases: random sampling, invariants, gradients."""

import pytest
import torch

from mipnerf360.internal import stepfun


def _step_function(seed, batch=6, n=16):
    """Random sorted endpoints t [batch, n+1] in [0, 1] and logits [batch, n]."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.sort(torch.rand(batch, n + 1, generator=gen), dim=-1).values
    t = torch.cat([torch.zeros(batch, 1), t[:, 1:-1], torch.ones(batch, 1)], dim=-1)
    w_logits = 2 * torch.randn(batch, n, generator=gen)
    return t, w_logits


def test_searchsorted_matches_its_definition_with_ties_and_broadcasting():
    a = torch.tensor([0.0, 0.25, 0.25, 0.5, 1.0])
    v = torch.tensor([[-1.0, 0.0, 0.1, 0.25, 0.3, 0.99, 1.0, 2.0]] * 2)  # a broadcasts to [2, 5]
    idx_lo, idx_hi = stepfun.searchsorted(a, v)
    # Last a <= v (else 0) and first a > v (else the last index).
    expected_lo = torch.tensor([0, 0, 0, 2, 2, 3, 4, 4])
    expected_hi = torch.tensor([0, 1, 1, 3, 3, 4, 4, 4])
    assert torch.equal(idx_lo, expected_lo.expand(2, -1))
    assert torch.equal(idx_hi, expected_hi.expand(2, -1))


def test_query_uses_outside_value_beyond_the_endpoints():
    t = torch.tensor([0.0, 1.0, 2.0])
    y = torch.tensor([5.0, 7.0])
    yq = stepfun.query(torch.tensor([-0.5, 0.0, 1.5, 2.0, 3.0]), t, y, outside_value=-1.0)
    assert torch.equal(yq, torch.tensor([-1.0, 5.0, 7.0, -1.0, -1.0]))


@pytest.mark.parametrize("use_gpu_resampling", [False, True])
@pytest.mark.parametrize("single_jitter", [False, True])
def test_sample_with_generator_is_random_sorted_and_in_range(single_jitter, use_gpu_resampling):
    t, w_logits = _step_function(0)
    kw = dict(single_jitter=single_jitter, use_gpu_resampling=use_gpu_resampling)
    draw = lambda seed: stepfun.sample(torch.Generator().manual_seed(seed), t, w_logits, 32, **kw)
    s1, s1_again, s2 = draw(1), draw(1), draw(2)
    assert s1.shape == (6, 32)
    assert torch.equal(s1, s1_again)
    assert not torch.allclose(s1, s2)
    assert torch.all(torch.diff(s1, dim=-1) >= 0)
    assert torch.all((s1 >= t[:, :1]) & (s1 <= t[:, -1:]))
    deterministic = stepfun.sample(None, t, w_logits, 32, **kw)
    assert not torch.allclose(s1, deterministic)


def test_sample_strata_and_single_jitter_on_the_identity_cdf():
    # Uniform weights on a uniform grid make the inverse CDF the identity, so samples are u itself.
    n = 8
    t = torch.linspace(0, 1, 5).expand(1000, 5)
    w_logits = torch.zeros(1000, 4)
    gen = torch.Generator().manual_seed(3)
    u_single = stepfun.sample(gen, t, w_logits, n, single_jitter=True)
    spacing = torch.diff(u_single, dim=-1)
    torch.testing.assert_close(spacing, spacing[:, :1].expand_as(spacing))
    u = stepfun.sample(gen, t, w_logits, n, single_jitter=False)
    eps = torch.finfo(torch.float32).eps
    u_max = eps + (1 - eps) / n
    starts = torch.linspace(0, 1 - u_max, n)
    jitter = u - starts
    width = (1 - u_max) / (n - 1) - eps
    assert torch.all(jitter >= -1e-6) and torch.all(jitter <= width + 1e-6)
    assert torch.all(u < 1)
    # The jitter is uniform over each stratum: its mean is half the stratum width.
    assert float(jitter.mean()) == pytest.approx(width / 2, rel=0.05)


def test_random_samples_follow_the_histogram():
    t = torch.tensor([0.0, 0.1, 0.5, 0.6, 1.0])
    w = torch.tensor([0.1, 0.2, 0.6, 0.1])
    gen = torch.Generator().manual_seed(4)
    samples = stepfun.sample(gen, t.expand(2000, 5), torch.log(w).expand(2000, 4), 16)
    counts = torch.bincount(torch.bucketize(samples.flatten(), t[1:-1]), minlength=4)
    torch.testing.assert_close(counts / counts.sum(), w, atol=0.01, rtol=0)


def test_sample_intervals_with_generator_are_sorted_and_inside_the_domain():
    t, w_logits = _step_function(5)
    gen = torch.Generator().manual_seed(6)
    intervals = stepfun.sample_intervals(
        gen, t, w_logits, 24, single_jitter=True, domain=(0.0, 1.0)
    )
    assert intervals.shape == (6, 25)
    assert torch.all(torch.diff(intervals, dim=-1) >= 0)
    assert torch.all((intervals >= 0) & (intervals <= 1))
    with pytest.raises(ValueError):
        stepfun.sample_intervals(gen, t, w_logits, 1)


def test_sample_keeps_float64():
    t, w_logits = _step_function(7)
    out = stepfun.sample(None, t.double(), w_logits.double(), 8)
    assert out.dtype == torch.float64


def test_max_dilate_weights_only_widens_and_renormalizes():
    t, w_logits = _step_function(8)
    w = torch.softmax(w_logits, dim=-1)
    t_dilate, w_dilate = stepfun.max_dilate_weights(t, w, 0.02, domain=(0.0, 1.0), renormalize=True)
    torch.testing.assert_close(w_dilate.sum(-1), torch.ones(6))
    _, w_raw = stepfun.max_dilate_weights(t, w, 0.02, domain=(0.0, 1.0))
    # Max-pooling never lowers the density anywhere: at the original bins' midpoints it is >= p.
    p_dilate = stepfun.weight_to_pdf(t_dilate, w_raw)
    mid = (t[:, 1:] + t[:, :-1]) / 2
    p = stepfun.weight_to_pdf(t, w)
    assert torch.all(stepfun.query(mid, t_dilate, p_dilate) >= p * (1 - 1e-5))


def test_resample_preserves_the_total_and_the_average_of_a_constant():
    t, w_logits = _step_function(9)
    vp = torch.softmax(w_logits, dim=-1)
    coarse = torch.linspace(-0.5, 1.5, 5)  # covers all of tp
    v = stepfun.resample(coarse, t, vp)
    torch.testing.assert_close(v.sum(-1), vp.sum(-1))
    const = stepfun.resample(coarse[1:-1], t, torch.full_like(vp, 3.0), use_avg=True)
    torch.testing.assert_close(const, torch.full((6, 2), 3.0))


def test_inner_outer_bracket_the_resampled_weights():
    t, w_logits = _step_function(10)
    w = torch.softmax(w_logits, dim=-1)
    t0 = torch.linspace(0, 1, 9)
    inner, outer = stepfun.inner_outer(t0, t, w)
    exact = stepfun.resample(t0, t, w)
    assert torch.all(inner <= exact + 1e-6) and torch.all(exact <= outer + 1e-6)


def test_lossfun_outer_is_zero_under_its_envelope_and_has_finite_gradients():
    t, w_logits = _step_function(11)
    w = torch.softmax(w_logits, dim=-1)
    torch.testing.assert_close(stepfun.lossfun_outer(t, w, t, w), torch.zeros_like(w))
    w_env = (0.5 * w).requires_grad_(True)
    w_zero = torch.cat([torch.zeros(6, 1), w[:, 1:]], dim=-1).requires_grad_(True)
    loss = stepfun.lossfun_outer(t, w_zero, t, w_env).sum()
    assert float(loss.detach()) > 0
    g_w, g_env = torch.autograd.grad(loss, (w_zero, w_env))
    # Raising the envelope never raises the loss (up to round-off in the cumsum's gradient).
    assert torch.all(torch.isfinite(g_w)) and torch.all(g_env <= 1e-6)
    assert torch.all(g_env.min(dim=-1).values < -0.1)


def test_lossfun_distortion_matches_a_numerical_double_integral():
    t = torch.tensor([0.0, 0.2, 0.3, 0.7, 1.0], dtype=torch.float64)
    w = torch.tensor([0.1, 0.4, 0.3, 0.2], dtype=torch.float64, requires_grad=True)
    loss = stepfun.lossfun_distortion(t, w)
    # Fine midpoint-rule quadrature of int int w(s) w(s') |s - s'| with w(s) the pdf of (t, w):
    # the inter-bin term uses bin midpoints, so compare the exact formula on the same footing.
    s = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
    p = stepfun.query(s, t, stepfun.weight_to_pdf(t, w.detach()))
    mid = (t[1:] + t[:-1]) / 2
    bin_of = torch.bucketize(s, t[1:-1])
    pos = mid[bin_of]  # every point placed at its bin's midpoint except within its own bin
    same = bin_of[:, None] == bin_of[None, :]
    dist = torch.where(same, (s[:, None] - s[None, :]).abs(), (pos[:, None] - pos[None, :]).abs())
    quadrature = (p[:, None] * p[None, :] * dist).sum() / 4000**2
    torch.testing.assert_close(loss, quadrature, rtol=1e-3, atol=0)
    (grad,) = torch.autograd.grad(loss, w)
    assert torch.all(torch.isfinite(grad))
