"""Adapters for depth_mipnerf's ray-weight losses (they read rays.depth) and MSELoss.forward."""

import types

from depth_mipnerf.models import loss, mip_nerf


def _rays_depth(case, inputs, function):
    """function(rays, tvals_, w, **static) with rays carrying only depth (stored as in_rays_depth)."""
    rays = types.SimpleNamespace(depth=inputs["rays_depth"])
    return function(rays, inputs["tvals_"], inputs["w"], **case["static"])


def _mse_loss_forward(case, inputs, function):
    """MSELoss(hparams=static).forward on the results/targets the case's notes describe."""
    a = inputs
    t, w = a["t_samples"], a["weights"]
    rays = types.SimpleNamespace(depth=a["depth_gt"][:, None])
    empty, near = mip_nerf.lossfun_depth_weight_CDF(rays, t, w, 0.3)
    results = {
        "rgb_fine": a["rgb_fine"], "depth": a["depth_pred"], "weights": w,
        "density_normals": a["density_normals"], "distortion": mip_nerf.lossfun_distortion(t, w),
        "near_loss": near, "empty_loss": empty, "envelope_loss": mip_nerf.lossfun_outer(t, w, t, 1.1 * w),
    }
    targets = {"rgb": a["rgb_gt"], "depth": a["depth_gt"], "normal": a["normal_gt"], "dirs": a["dirs"],
               "dmask": a["dmask"]}
    return function(loss.MSELoss(case["static"]), results, targets)


ADAPTERS = {
    "depth_mipnerf.models.mip_nerf:lossfun_depth_weight_CDF": _rays_depth,
    "depth_mipnerf.models.mip_nerf:lossfun_depth_weight_CDF_test": _rays_depth,
    "depth_mipnerf.models.mip_nerf:lossfun_depth_weight": _rays_depth,
    "depth_mipnerf.models.loss:MSELoss.forward": _mse_loss_forward,
}
