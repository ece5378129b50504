"""Adapters for depth_mipnerf's ray-weight losses (they read rays.depth) and MSELoss.forward."""

import types

from depth_mipnerf.models import loss, mip_nerf


def _rays_depth(case, inputs, function):
    """function(rays, tvals_, w, **static) with rays carrying only depth (stored as in_rays_depth)."""
    rays = types.SimpleNamespace(depth=inputs["rays_depth"])
    return function(rays, inputs["tvals_"], inputs["w"], **case["static"])


# The ray-weight depth loss that made results' (empty_loss, near_loss), by the static 'depth_loss'.
_DEPTH_LOSSES = {
    "cdf": lambda rays, t, w, s: mip_nerf.lossfun_depth_weight_CDF(rays, t, w, s.get("eps", 0.3),
                                                                   beta=s.get("beta", 0.0)),
    "urf": lambda rays, t, w, s: mip_nerf.lossfun_depth_weight(rays, t, w, s.get("eps", 0.3)),
    "cdf_test": lambda rays, t, w, s: mip_nerf.lossfun_depth_weight_CDF_test(rays, t, w, s.get("eps", 0.3)),
}


def _results(static, a):
    """MipNerf's results dict from the case's arrays: every entry the case stores (in_<key>, the depth as
    in_depth_pred); entries it leaves out are computed as the case notes describe: distortion from
    (t_samples, weights), empty/near from static['depth_loss'] (default 'cdf', eps 0.3, beta 0) with
    rays.depth = in_depth_gt, envelope_loss = lossfun_outer(t, w, t, 1.1 w)."""
    t, w = a["t_samples"], a["weights"]
    results = {"depth": a["depth_pred"]}
    for key in ("rgb_fine", "rgb_coarse", "weights", "t_samples", "density_normals", "mlp_normals", "acc",
                "distortion", "empty_loss", "near_loss", "envelope_loss"):
        if key in a:
            results[key] = a[key]
    if "distortion" not in results:
        results["distortion"] = mip_nerf.lossfun_distortion(t, w)
    if "near_loss" not in results or "empty_loss" not in results:
        rays = types.SimpleNamespace(depth=a["depth_gt"].reshape(-1, 1))
        depth_loss = _DEPTH_LOSSES[static.get("depth_loss", "cdf")]
        results["empty_loss"], results["near_loss"] = depth_loss(rays, t, w, static)
    if "envelope_loss" not in results:
        results["envelope_loss"] = mip_nerf.lossfun_outer(t, w, t, 1.1 * w)
    return results


def _mse_loss_forward(case, inputs, function):
    """MSELoss(hparams=static, read by key name).forward(results, targets[, mask=in_mask][, step=static step])."""
    a = inputs
    targets = {"rgb": a["rgb_gt"], "depth": a["depth_gt"], "normal": a["normal_gt"], "dirs": a["dirs"],
               "dmask": a["dmask"]}
    return function(loss.MSELoss(case["static"]), _results(case["static"], a), targets)


ADAPTERS = {
    "depth_mipnerf.models.mip_nerf:lossfun_depth_weight_CDF": _rays_depth,
    "depth_mipnerf.models.mip_nerf:lossfun_depth_weight_CDF_test": _rays_depth,
    "depth_mipnerf.models.mip_nerf:lossfun_depth_weight": _rays_depth,
    "depth_mipnerf.models.loss:MSELoss.forward": _mse_loss_forward,
}
