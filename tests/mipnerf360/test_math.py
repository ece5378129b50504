"""mipnerf360.internal.math beyond the golden cases: custom gradients, autocast, broadcasting."""

import numpy as np
import pytest
import torch

from mipnerf360.internal import math


def test_safe_exp_gradient_is_its_value_even_past_the_clamp():
    x = torch.tensor([-5.0, 0.0, 10.0, 88.0, 100.0, 1e4], requires_grad=True)
    y = math.safe_exp(x)
    (grad,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    # Beyond 88 a plain clamp would give a zero gradient; the original's custom JVP keeps it large.
    torch.testing.assert_close(grad, y)
    assert torch.all(grad[3:] > 1e38) and torch.all(torch.isfinite(grad))
    (grad2,) = torch.autograd.grad(grad.sum(), x)
    torch.testing.assert_close(grad2, y.detach())


def test_safe_exp_matches_exp_and_its_derivatives_below_the_clamp():
    x = torch.linspace(-3, 3, 7, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(math.safe_exp(x), torch.exp(x))
    assert torch.autograd.gradcheck(math.safe_exp, (x,))
    assert torch.autograd.gradgradcheck(math.safe_exp, (x,))
    x_dot = torch.linspace(1, 2, 7, dtype=torch.float64)
    y, y_dot = torch.func.jvp(math.safe_exp, (x.detach(),), (x_dot,))
    torch.testing.assert_close(y_dot, torch.exp(x.detach()) * x_dot)


@pytest.mark.parametrize("safe_fn, fn", [(math.safe_sin, torch.sin), (math.safe_cos, torch.cos)])
def test_safe_trig_is_the_trig_function_with_its_gradient(safe_fn, fn):
    # 100 pi is a whole number of periods, so the reduction is exact in float64 for any x.
    x = torch.tensor([-1e5, -4000.5, -2.0, 0.3, 314.0, 400.0, 12345.6], dtype=torch.float64)
    x.requires_grad_(True)
    y = safe_fn(x)
    torch.testing.assert_close(y, fn(x), atol=1e-9, rtol=0)
    (grad,) = torch.autograd.grad(y.sum(), x)
    expected = torch.cos(x) if fn is torch.sin else -torch.sin(x)
    torch.testing.assert_close(grad, expected.detach(), atol=1e-9, rtol=0)


def test_matmul_keeps_full_precision_inside_bf16_autocast():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(64, 3, generator=gen)
    b = torch.randn(3, 21, generator=gen)
    exact = (a.double() @ b.double()).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
        out = math.matmul(a, b)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, exact, rtol=1e-6, atol=1e-6)


def test_learning_rate_decay_schedule_endpoints_and_warmup():
    kw = dict(lr_init=2e-3, lr_final=2e-5, max_steps=1000, lr_delay_steps=100, lr_delay_mult=0.01)
    assert float(math.learning_rate_decay(0, **kw)) == pytest.approx(2e-3 * 0.01)
    assert float(math.learning_rate_decay(1000, **kw)) == pytest.approx(2e-5)
    assert float(math.learning_rate_decay(5000, **kw)) == pytest.approx(2e-5)  # t clips at 1.
    # Halfway through the log-linear decay is the geometric mean of the two rates.
    assert float(math.learning_rate_decay(500, **kw)) == pytest.approx(2e-4, rel=1e-5)
    # The warm-up factor rises from lr_delay_mult to exactly 1 at lr_delay_steps and stays there.
    steps = torch.arange(0, 201)
    no_delay = dict(kw, lr_delay_steps=0)
    factor = math.learning_rate_decay(steps, **kw) / math.learning_rate_decay(steps, **no_delay)
    assert float(factor[0]) == pytest.approx(0.01)
    assert torch.all(torch.diff(factor[:101]) > 0)
    torch.testing.assert_close(factor[100:], torch.ones(101))


def test_log_lerp_rejects_non_positive_interpolants():
    with pytest.raises(ValueError):
        math.log_lerp(0.5, 0.0, 1.0)
    with pytest.raises(ValueError):
        math.log_lerp(0.5, 1.0, -1.0)


def _sorted_rows(gen, shape, ties=False):
    """Random non-decreasing rows, optionally with repeated values (zero-width intervals)."""
    x = torch.rand(shape, generator=gen, dtype=torch.float64)
    if ties:
        x = torch.round(x * 8) / 8
    return torch.sort(x, dim=-1).values


@pytest.mark.parametrize("ties", [False, True])
def test_interp_and_sorted_interp_agree_with_numpy(ties):
    gen = torch.Generator().manual_seed(1)
    xp = _sorted_rows(gen, (5, 12), ties)
    fp = _sorted_rows(gen, (5, 12))
    x = torch.rand(5, 30, generator=gen, dtype=torch.float64) * 1.4 - 0.2  # some out of range
    expected = np.stack([np.interp(x[i], xp[i], fp[i]) for i in range(5)])
    torch.testing.assert_close(math.interp(x, xp, fp), torch.from_numpy(expected))
    # sorted_interp differs from np.interp only at x exactly on a repeated xp (it takes the right
    # end of the tie instead of the left), which random x does not hit.
    torch.testing.assert_close(math.sorted_interp(x, xp, fp), torch.from_numpy(expected))


def test_interp_broadcasts_leading_dimensions():
    xp = torch.linspace(0, 1, 9)
    fp = torch.stack([xp**2, 2 * xp])  # [2, 9]
    x = torch.tensor([[0.25, 0.5], [0.75, 1.0]])[:, None]  # [2, 1, 2]
    out = math.interp(x, xp, fp)
    assert out.shape == (2, 2, 2)
    torch.testing.assert_close(out[1, 1], 2 * x[1, 0])


def test_interp_gradient_is_finite_on_zero_width_intervals():
    xp = torch.tensor([0.0, 0.5, 0.5, 1.0], requires_grad=True)
    fp = torch.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
    x = torch.tensor([0.25, 0.5, 0.75], requires_grad=True)
    y = math.interp(x, xp, fp)
    torch.testing.assert_close(y, torch.tensor([0.5, 2.0, 2.5]))
    grads = torch.autograd.grad(y.sum(), (x, xp, fp))
    assert all(torch.all(torch.isfinite(g)) for g in grads)


def test_safe_trig_helper_reduces_only_large_arguments_into_zero_to_t():
    t = 100 * torch.pi
    x = torch.tensor([-1e4, -t, -300.0, 0.5, 300.0, t, 1e4], dtype=torch.float64)
    reduced = math.safe_trig_helper(x, lambda v: v)
    small = x.abs() < t
    torch.testing.assert_close(reduced[small], x[small])
    assert torch.all((reduced[~small] >= 0) & (reduced[~small] < t))
    torch.testing.assert_close(reduced[~small], torch.from_numpy(np.mod(x[~small].numpy(), t)))
