# Derived from salykovaa/inerf (no licence file in that repository: all rights reserved by default; see THIRD_PARTY_NOTICES.md).
"""The pose update of iNeRF: an SE(3) exponential map left-multiplied onto the start pose (paper eq. 3-5)."""

import torch
import torch.nn as nn


def vec2ss_matrix(vector):
    """Skew-symmetric matrix [3, 3] of vector [3]: vec2ss_matrix(a) @ b == a x b."""
    zero = torch.zeros_like(vector[0])
    x, y, z = vector[0], vector[1], vector[2]
    return torch.stack([torch.stack([zero, -z, y]),
                        torch.stack([z, zero, -x]),
                        torch.stack([-y, x, zero])])


def exp_se3(w, v, theta):
    """exp([w, v] theta) [4, 4] by the screw formula (Modern Robotics eq. 3.51/3.88).

    R = I + sin(theta) [w] + (1 - cos(theta)) [w]^2,
    t = (I theta + (1 - cos(theta)) [w] + (theta - sin(theta)) [w]^2) v.
    It is a rigid motion only when |w| = 1.
    """
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    w_ss = vec2ss_matrix(w)
    w_ss2 = w_ss @ w_ss
    sin, cos = torch.sin(theta), torch.cos(theta)
    rot = eye + sin * w_ss + (1 - cos) * w_ss2
    trans = (eye * theta + (1 - cos) * w_ss + (theta - sin) * w_ss2) @ v
    top = torch.cat([rot, trans[:, None]], 1)
    bottom = torch.tensor([[0., 0., 0., 1.]], dtype=w.dtype, device=w.device)
    return torch.cat([top, bottom], 0)


class camera_transf(nn.Module):  # noqa: N801 (the original's class name)
    """Learnable screw (w, v, theta), each drawn from N(0, 1e-6); forward(x) = exp([w, v] theta) @ x.

    unit_axis=False is the original: w is used as it is, so once |w| drifts from 1 the rotation
    block stops being orthonormal. unit_axis=True (the paper's screw axis) uses w / |w|, so every
    estimate is a rigid motion.
    """

    def __init__(self, unit_axis=False):
        super().__init__()
        self.unit_axis = unit_axis
        self.w = nn.Parameter(torch.normal(0., 1e-6, size=(3,)))
        self.v = nn.Parameter(torch.normal(0., 1e-6, size=(3,)))
        self.theta = nn.Parameter(torch.normal(0., 1e-6, size=()))

    def axis(self):
        """The rotation axis [3] used by forward."""
        if not self.unit_axis:
            return self.w
        # clamp: |w| starts at ~1e-6 and must never divide by zero.
        return self.w / torch.clamp(torch.linalg.norm(self.w), min=1e-12)

    def forward(self, x):
        """x [4, 4] start pose (camera-to-world) -> exp([w, v] theta) @ x [4, 4]."""
        return exp_se3(self.axis(), self.v, self.theta).to(x) @ x
