"""Writes golden cases for depth_mipnerf (ray-weight depth losses, the total loss MSELoss.forward, whole
training steps) by running the ORIGINAL fork (AlexSheldrick/mipnerf_pl, branch depth-mipnerf) on seeded inputs.

    python tests/golden/tools/gen_depth_mipnerf.py --original /tmp/orig_depth_mipnerf \
        --out tests/golden/depth_mipnerf

`--original` is a work tree of the fork at the commit below (the script records that commit in each
case's `reference`). The fork's `models/mip.py`, `models/mip_nerf.py` and `models/loss.py` are imported
from there as they are; of the modules they import only for datasets and visualisation, stand-ins give
what the model uses: `datasets.datasets.Rays` (a namedtuple of the same fields) and `utils.vis.l2_normalize`
(that one function, executed from the fork's own file). `models.mip.diagonal_scale` is pinned to 'cuda:0'
in the fork; it is replaced by the same powers of two on the CPU. Needs torch (2.13 was used), numpy,
einops; runs on the CPU in a few seconds.

Cases are named `gen_*.npz`; running the script again replaces its own manifest entries (same case
name) and leaves every other entry as it was.
"""

import argparse
import ast
import collections
import importlib.util
import json
import pathlib
import sys
import types

import numpy as np
import torch

COMMIT = "e12007d28a329ab93b77108d6240f95e8dcead42"
REPO = "AlexSheldrick/mipnerf_pl"

RAYS_FIELDS = ("origins", "directions", "viewdirs", "radii", "lossmult", "near", "far", "depth", "normal", "mask",
               "depth_vars", "cam_idx")
RAYS_NOTE = ("`rays` is the fork's Rays namedtuple; only rays.depth ([B,1], 0 = no depth) is read: "
             "stored as in_rays_depth. ")


def _function_from(path, name, namespace):
    """Executes only the top-level function `name` of the source file at path (its other imports are
    heavy and unused here) in namespace; returns it."""
    tree = ast.parse(pathlib.Path(path).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def load_original(root):
    """(mip_nerf, loss) modules of the fork at root. Its model imports stand in as: `datasets.datasets`
    (only its Rays namedtuple, same fields), `utils.vis` (only l2_normalize, taken from the fork's file)."""
    root = pathlib.Path(root)
    sys.path.insert(0, str(root))
    for package, path in (("models", root / "models"), ("utils", None), ("datasets", None)):
        module = types.ModuleType(package)
        module.__path__ = [str(path)] if path else []
        sys.modules[package] = module
    data = types.ModuleType("datasets.datasets")
    data.Rays = collections.namedtuple("Rays", RAYS_FIELDS)
    vis = types.ModuleType("utils.vis")
    vis.l2_normalize = _function_from(root / "utils" / "vis.py", "l2_normalize", {"torch": torch, "np": np})
    sys.modules["datasets.datasets"], sys.modules["utils.vis"] = data, vis
    loaded = {}
    for name in ("mip", "mip_nerf", "loss"):
        spec = importlib.util.spec_from_file_location(f"models.{name}", root / "models" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"models.{name}"] = module
        spec.loader.exec_module(module)
        loaded[name] = module
        if name == "mip":
            # The fork pins its positional-encoding scales to 'cuda:0'; the same powers of two on the CPU.
            module.diagonal_scale = lambda min_deg, max_deg: 2 ** torch.arange(min_deg, max_deg)[..., None]
    return loaded["mip_nerf"], loaded["loss"]


def ray_samples(rng, batch, n, near=2.0, far=6.0, frac_no_depth=0.25, dense=0.5):
    """(depth [B,1], t [B,N+1], w [B,N]) float32: sorted samples, part uniform and part around the
    depth (as a proposal would place them), weights a noisy bump near the depth, opacity 0.5..1."""
    depth = rng.uniform(near + 0.5, far - 0.5, (batch, 1))
    depth[rng.uniform(size=batch) < frac_no_depth] = 0.0
    depth[0] = rng.uniform(near + 0.5, far - 0.5)  # at least one ray with depth
    around = np.where(depth > 0, depth, rng.uniform(near + 0.5, far - 0.5, (batch, 1)))
    n_dense = int(round(dense * (n + 1)))
    t = np.concatenate([rng.uniform(near, far, (batch, n + 1 - n_dense)),
                        around + rng.normal(0, 0.08, (batch, n_dense))], axis=-1)
    t = np.sort(np.clip(t, near, far), axis=-1)
    mid = 0.5 * (t[:, 1:] + t[:, :-1])
    centre = around + rng.normal(0, 0.04, (batch, 1))
    width = rng.uniform(0.02, 0.15, (batch, 1))
    w = np.exp(-0.5 * ((mid - centre) / width) ** 2) + 0.02 * rng.uniform(size=(batch, n))
    w = w / w.sum(-1, keepdims=True) * rng.uniform(0.5, 1.0, (batch, 1))
    return depth.astype(np.float32), t.astype(np.float32), w.astype(np.float32)


def entry(case, function, ref_function, args, static, outputs, notes, rtol=1e-5, atol=1e-7, path="models/mip_nerf.py"):
    return {"case": case, "function": function, "reference": f"{REPO}@{COMMIT}:{path}:{ref_function}",
            "args": args, "static": static, "outputs": outputs, "rtol": rtol, "atol": atol, "notes": notes}


def np32(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)


def ray_loss_cases(mip_nerf, rng):
    """Cases of the three ray-weight depth losses over eps, beta, uncertain and sizes."""
    Rays = types.SimpleNamespace
    cases = []
    sizes = [(6, 24), (3, 64), (16, 8), (5, 128)]
    for eps in (0.05, 0.1, 0.15, 0.3, 0.45):
        for batch, n in sizes[:2] if eps not in (0.05, 0.3) else sizes:
            depth, t, w = ray_samples(rng, batch, n)
            empty, near = mip_nerf.lossfun_depth_weight(Rays(depth=torch.from_numpy(depth)), torch.from_numpy(t),
                                                        torch.from_numpy(w), eps)
            name = f"gen_depth_weight_urf_eps{eps}_b{batch}n{n}.npz"
            arrays = {"in_rays_depth": depth, "in_tvals_": t, "in_w": w, "out_empty": np32(empty),
                      "out_near": np32(near)}
            note = (RAYS_NOTE + "URF-style loss (see lossfun_depth_weight_urf_* cases): sigma=(eps/3)^2 used as "
                    "std, target normalised by its max over the whole batch; no depth>0 check.")
            cases.append((name, arrays, entry(name, "depth_mipnerf.models.mip_nerf:lossfun_depth_weight",
                                               "lossfun_depth_weight", ["rays", "tvals_", "w", "eps"],
                                               {"eps": eps}, ["empty", "near"], note)))
    for eps in (0.05, 0.3):
        for beta in (0.0, 0.01, 0.03, 0.06):
            for uncertain in (False, True):
                for batch, n in sizes if (uncertain is False) else sizes[:1]:
                    depth, t, w = ray_samples(rng, batch, n)
                    empty, near = mip_nerf.lossfun_depth_weight_CDF(
                        Rays(depth=torch.from_numpy(depth)), torch.from_numpy(t), torch.from_numpy(w), eps,
                        uncertain, beta)
                    name = f"gen_depth_weight_CDF_eps{eps}_beta{beta}_unc{int(uncertain)}_b{batch}n{n}.npz"
                    arrays = {"in_rays_depth": depth, "in_tvals_": t, "in_w": w, "out_empty": np32(empty),
                              "out_near": np32(near)}
                    note = (RAYS_NOTE + "Bounded-CDF loss (see lossfun_depth_weight_CDF_* cases): sigma = 0.03 "
                            "whatever eps; beta shifts the upper/lower bound CDFs to D-beta / D+beta; "
                            "uncertain is unused; depth 0 rays are masked out.")
                    cases.append((name, arrays, entry(
                        name, "depth_mipnerf.models.mip_nerf:lossfun_depth_weight_CDF", "lossfun_depth_weight_CDF",
                        ["rays", "tvals_", "w", "eps", "uncertain", "beta"],
                        {"eps": eps, "uncertain": uncertain, "beta": beta}, ["empty", "near"], note)))
    for eps in (0.05, 0.3):
        for uncertain in (False, True):
            for batch, n in sizes if (uncertain is False) else sizes[:1]:
                depth, t, w = ray_samples(rng, batch, n)
                empty, bound = mip_nerf.lossfun_depth_weight_CDF_test(
                    Rays(depth=torch.from_numpy(depth)), torch.from_numpy(t), torch.from_numpy(w), eps, uncertain)
                name = f"gen_depth_weight_CDF_test_eps{eps}_unc{int(uncertain)}_b{batch}n{n}.npz"
                arrays = {"in_rays_depth": depth, "in_tvals_": t, "in_w": w, "out_empty": np32(empty),
                          "out_bound": np32(bound)}
                note = (RAYS_NOTE + "Open-interval CDF bound (see lossfun_depth_weight_CDF_test_* cases): sigma "
                        "0.03, eps and uncertain unused, empty output is zeros.")
                cases.append((name, arrays, entry(
                    name, "depth_mipnerf.models.mip_nerf:lossfun_depth_weight_CDF_test",
                    "lossfun_depth_weight_CDF_test", ["rays", "tvals_", "w", "eps", "uncertain"],
                    {"eps": eps, "uncertain": uncertain}, ["empty", "bound"], note)))
    return cases


# The fork's configs (configs/*.yaml, loss and nerf.mlp sections) by name; lego_bkup has no
# mlp_normals key (default.yaml's False applies).
CONFIGS = {
    "lego": {"loss.lambda_depth": 0.0, "loss.lambda_normal": 0.0, "loss.lambda_distortion": 0.0,
             "loss.lambda_orientation": 0.0, "loss.coarse_loss_mult": 0.1, "loss.lambda_empty_loss": 1.0,
             "loss.lambda_near_loss": 0.1, "loss.lambda_prop_loss": 1.0, "nerf.mlp.prop_mlp": True,
             "optimizer.max_steps": 50000, "nerf.mlp.mlp_normals": False},
    "lego_bkup": {"loss.lambda_depth": 0.0, "loss.lambda_normal": 0.0, "loss.lambda_distortion": 0.0,
                  "loss.lambda_orientation": 0.0, "loss.coarse_loss_mult": 0.1, "loss.lambda_empty_loss": 0.1,
                  "loss.lambda_near_loss": 0.02, "loss.lambda_prop_loss": 0.05, "nerf.mlp.prop_mlp": True,
                  "optimizer.max_steps": 50000, "nerf.mlp.mlp_normals": False},
    "scannet": {"loss.lambda_depth": 0.0, "loss.lambda_normal": 0.0, "loss.lambda_distortion": 1e-4,
                "loss.lambda_orientation": 0.0, "loss.coarse_loss_mult": 0.1, "loss.lambda_empty_loss": 1.0,
                "loss.lambda_near_loss": 0.1, "loss.lambda_prop_loss": 1.0, "nerf.mlp.prop_mlp": True,
                "optimizer.max_steps": 150000, "nerf.mlp.mlp_normals": False},
    "matterport": {"loss.lambda_depth": 0.0, "loss.lambda_normal": 0.0, "loss.lambda_distortion": 1e-4,
                   "loss.lambda_orientation": 0.0, "loss.coarse_loss_mult": 0.1, "loss.lambda_empty_loss": 1.0,
                   "loss.lambda_near_loss": 0.05, "loss.lambda_prop_loss": 1.0, "nerf.mlp.prop_mlp": True,
                   "optimizer.max_steps": 150000, "nerf.mlp.mlp_normals": False},
}


def variant(base, **changes):
    out = dict(CONFIGS[base])
    out.update({k.replace("__", "."): v for k, v in changes.items()})
    return out


# (name, hparams, depth loss kind feeding results' empty/near, eps, beta, batch, samples, fraction of rays
# without depth, fraction of rays without a GT normal)
LOSS_SETUPS = [
    ("lego_cdf", CONFIGS["lego"], "cdf", 0.3, 0.0, 8, 32, 0.25, 0.0),
    ("lego_bkup_cdf", CONFIGS["lego_bkup"], "cdf", 0.45, 0.0, 6, 24, 0.25, 0.0),
    ("scannet_cdf_beta", CONFIGS["scannet"], "cdf", 0.15, 0.06, 8, 48, 0.25, 0.0),
    ("matterport_cdf_beta", CONFIGS["matterport"], "cdf", 0.05, 0.01, 5, 16, 0.4, 0.0),
    ("lego_urf", CONFIGS["lego"], "urf", 0.15, 0.0, 8, 32, 0.25, 0.0),
    ("scannet_urf_eps0.45", CONFIGS["scannet"], "urf", 0.45, 0.0, 4, 64, 0.0, 0.0),
    ("lego_cdf_test", CONFIGS["lego"], "cdf_test", 0.3, 0.0, 8, 32, 0.25, 0.0),
    ("l2depth", variant("lego", loss__lambda_depth=0.02, loss__lambda_near_loss=0.0,
                        loss__lambda_empty_loss=0.0), "cdf", 0.3, 0.0, 8, 32, 0.25, 0.0),
    ("l2depth_cdf_dist", variant("scannet", loss__lambda_depth=0.02), "cdf", 0.3, 0.03, 12, 16, 0.5, 0.0),
    ("no_depth_terms", variant("lego", loss__lambda_near_loss=0.0, loss__lambda_empty_loss=0.0),
     "cdf", 0.3, 0.0, 8, 32, 0.75, 0.0),
    ("normals_orient", variant("scannet", loss__lambda_normal=0.001, loss__lambda_orientation=0.01),
     "cdf", 0.3, 0.0, 8, 32, 0.25, 0.25),
    ("mlp_normals", variant("lego", loss__lambda_normal=0.02, loss__lambda_orientation=0.001,
                            nerf__mlp__mlp_normals=True), "cdf", 0.3, 0.0, 6, 24, 0.25, 0.25),
    ("two_stage", variant("lego", nerf__mlp__prop_mlp=False, loss__lambda_depth=0.02,
                          loss__lambda_distortion=1e-4), "cdf", 0.3, 0.0, 8, 32, 0.25, 0.0),
    ("two_stage_urf_normals", variant("scannet", nerf__mlp__prop_mlp=False, loss__coarse_loss_mult=0.5,
                                      loss__lambda_normal=0.01, nerf__mlp__mlp_normals=True),
     "urf", 0.05, 0.0, 4, 64, 0.25, 0.5),
]
# Setups stored in the visible case's layout (loss_MSELoss_forward.npz): only rgb_fine, depth_pred, weights,
# t_samples, density_normals and the targets; distortion, empty/near (static depth_loss, eps, beta on
# rays.depth = depth_gt) and envelope_loss = lossfun_outer(t, w, t, 1.1 w) are left to the caller.
LEGACY = {"legacy_urf_eps0.15", "legacy_cdf_eps0.05_beta0.06", "legacy_cdf_test"}
LOSS_SETUPS += [
    ("legacy_urf_eps0.15", CONFIGS["scannet"], "urf", 0.15, 0.0, 6, 32, 0.25, 0.0),
    ("legacy_cdf_eps0.05_beta0.06", CONFIGS["lego"], "cdf", 0.05, 0.06, 8, 24, 0.25, 0.0),
    ("legacy_cdf_test", variant("matterport", loss__lambda_depth=0.02), "cdf_test", 0.3, 0.0, 5, 40, 0.4, 0.0),
]
# Setups whose forward also gets a mask [B] and a step (the fork's validation call): both unused there.
MASKED = {"lego_cdf_masked": ("lego_cdf", 1200), "two_stage_masked": ("two_stage", 7)}
LOSS_SETUPS += [(name,) + next(s for s in LOSS_SETUPS if s[0] == base)[1:] for name, (base, _) in MASKED.items()]

LOSS_OUTPUTS = ["total", "rgb", "depth", "normal", "orientation", "distortion", "empty", "near", "envelope",
                "psnr", "chord", "normal_loss_lowerbounded", "incomplete"]


def unit(rng, shape):
    v = rng.normal(size=shape)
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def mse_loss_cases(mip_nerf, loss_mod, rng):
    """MSELoss.forward on results/targets shaped as MipNerf's, one case per LOSS_SETUPS entry."""
    cases = []
    for name, hparams, kind, eps, beta, batch, n, frac_no_depth, frac_no_normal in LOSS_SETUPS:
        depth, t, w = ray_samples(rng, batch, n, frac_no_depth=frac_no_depth)
        tt, wt = torch.from_numpy(t), torch.from_numpy(w)
        rays = types.SimpleNamespace(depth=torch.from_numpy(depth))
        if kind == "cdf":
            empty, near = mip_nerf.lossfun_depth_weight_CDF(rays, tt, wt, eps, False, beta)
        elif kind == "urf":
            empty, near = mip_nerf.lossfun_depth_weight(rays, tt, wt, eps)
        else:
            empty, near = mip_nerf.lossfun_depth_weight_CDF_test(rays, tt, wt, eps)
        # A proposal level of n // 2 intervals over the same range whose weights roughly envelope w.
        _, t_env, w_env = ray_samples(rng, batch, max(n // 2, 2))
        t_env[:, 0], t_env[:, -1] = t[:, 0], t[:, -1]
        if name in LEGACY:
            t_env, w_env = t, 1.1 * w
        mid = 0.5 * (t[:, 1:] + t[:, :-1])
        depth_pred = (w * mid).sum(-1).astype(np.float32)
        normal_gt = unit(rng, (batch, 3))
        normal_gt[1:][rng.uniform(size=batch - 1) < frac_no_normal] = 0.0
        arrays = {
            "in_rgb_fine": rng.uniform(size=(batch, 3)).astype(np.float32),
            "in_depth_pred": depth_pred,
            "in_weights": w, "in_t_samples": t,
            "in_density_normals": unit(rng, (batch, n, 3)),
            "in_distortion": np32(mip_nerf.lossfun_distortion(tt, wt)),
            "in_empty_loss": np32(empty).reshape(-1), "in_near_loss": np32(near).reshape(-1),
            "in_envelope_loss": np32(mip_nerf.lossfun_outer(tt, wt, torch.from_numpy(t_env),
                                                            torch.from_numpy(w_env))),
            "in_rgb_gt": rng.uniform(size=(batch, 3)).astype(np.float32),
            "in_depth_gt": depth[:, 0],
            "in_normal_gt": normal_gt,
            "in_dirs": unit(rng, (batch, 3)),
            "in_dmask": depth[:, 0] <= 0,
        }
        if not hparams["nerf.mlp.prop_mlp"]:
            arrays["in_rgb_coarse"] = rng.uniform(size=(batch, 3)).astype(np.float32)
        if hparams["nerf.mlp.mlp_normals"]:
            arrays["in_mlp_normals"] = unit(rng, (batch, n, 3))
        results = {k: torch.from_numpy(arrays["in_" + k]) for k in (
            "rgb_fine", "weights", "t_samples", "density_normals", "distortion", "empty_loss", "near_loss",
            "envelope_loss", "rgb_coarse", "mlp_normals") if "in_" + k in arrays}
        results["depth"] = torch.from_numpy(depth_pred)
        results["normal_lowerbound_error"] = torch.zeros(batch)
        targets = {"rgb": torch.from_numpy(arrays["in_rgb_gt"]), "depth": torch.from_numpy(arrays["in_depth_gt"]),
                   "normal": torch.from_numpy(normal_gt), "dirs": torch.from_numpy(arrays["in_dirs"]),
                   "dmask": torch.from_numpy(arrays["in_dmask"])}
        args, static = ["results", "targets"], dict(hparams, depth_loss=kind, eps=eps, beta=beta)
        if name in MASKED:
            arrays["in_mask"] = rng.uniform(size=batch) < 0.5
            static["step"] = MASKED[name][1]
            args.append("mask")
            out = loss_mod.MSELoss(hparams).forward(results, targets, mask=torch.from_numpy(arrays["in_mask"]),
                                                    step=static["step"])
        else:
            out = loss_mod.MSELoss(hparams).forward(results, targets)
        for key in LOSS_OUTPUTS:
            arrays[f"out_{key}"] = np32(out[key]).astype(np.float32)
        if name in LEGACY:
            for key in ("distortion", "empty_loss", "near_loss", "envelope_loss"):
                del arrays[f"in_{key}"]
        case = f"gen_MSELoss_forward_{name}.npz"
        note = (
            "MSELoss(hparams=static).forward(results, targets); static holds the fork's flattened yaml keys "
            "by name (extra keys depth_loss/eps/beta name how results' empty_loss/near_loss were made, on "
            "rays.depth = in_depth_gt [B, 1]: "
            f"{kind} with eps {eps}, beta {beta}). Every results entry is stored: rgb_fine, [rgb_coarse], "
            "depth=in_depth_pred, weights, t_samples, density_normals, [mlp_normals], distortion [B], empty_loss "
            "[1], near_loss [1], envelope_loss [B,N] (results['normal_lowerbound_error'] is zeros, unused by "
            "the total); targets: rgb=in_rgb_gt, depth=in_depth_gt, normal=in_normal_gt (all-zero = no GT "
            "normal), dirs, dmask (True = no depth). prop_mlp=False: rgb adds coarse_loss_mult * MSE of "
            "rgb_coarse and envelope is 0; mlp_normals=True: normal/chord average the self-supervised "
            "(mlp vs density normals) and supervised terms. A case with a `mask` arg (bool [B]) and a static "
            "'step' passes both to forward, which ignores them (the fork resets mask to None); "
            "normal_loss_lowerbounded and incomplete are the fork's always-zero entries. A case without "
            "in_distortion / in_empty_loss / in_near_loss / in_envelope_loss (the visible case's layout) "
            "leaves them to be computed: lossfun_distortion(t_samples, weights), the static depth_loss, and "
            "lossfun_outer(t_samples, weights, t_samples, 1.1 * weights).")
        cases.append((case, arrays, entry(case, "depth_mipnerf.models.loss:MSELoss.forward", "MSELoss.forward",
                                          args, static, LOSS_OUTPUTS, note, atol=1e-6,
                                          path="models/loss.py")))
    return cases


# Whole training steps: the fork's MipNerf + MSELoss + backward, as its
# MipNeRFSystem.training_step. (name, MipNerf kwargs, proposal MLP (depth, width), loss hparams, eps,
# batch, white_bkgd, grad_accum_steps the port is asked to split the batch into)
STEP_SETUPS = [
    ("lego_l3_s16_b8", dict(num_samples=16, num_levels=3, max_deg_point=8, mlp_net_depth=4, mlp_net_width=32,
                            mlp_net_width_condition=16, mlp_skip_index=2), (2, 32),
     variant("lego", loss__lambda_distortion=1e-3), 0.3, 8, True, 1),
    ("scannet_l2_s12_b6_accum2", dict(num_samples=12, num_levels=2, max_deg_point=6, deg_view=2, mlp_net_depth=3,
                                     mlp_net_width=24, mlp_net_width_condition=12, mlp_skip_index=4,
                                     density_bias=-0.5, resample_padding=0.05),
     (3, 16), variant("scannet", loss__lambda_depth=0.02), 0.15, 6, False, 2),
    # Density normals (gradient of the density, double backward) and the MLP's own normals: the fork
    # runs mlp_normals only with compute_normals (its other branch unpacks two of three outputs).
    ("normals_l3_s8_b6", dict(num_samples=8, num_levels=3, max_deg_point=6, mlp_net_depth=3, mlp_net_width=24,
                              mlp_net_width_condition=12, mlp_skip_index=4, mlp_normals=True), (2, 16),
     variant("lego", loss__lambda_normal=0.02, loss__lambda_orientation=0.01, loss__lambda_distortion=1e-3,
             nerf__mlp__mlp_normals=True), 0.3, 6, True, 1, {"normals": True}),
    ("normals_nostopgrad_l2_s8_b4", dict(num_samples=8, num_levels=2, max_deg_point=5, mlp_net_depth=2,
                                         mlp_net_width=16, mlp_net_width_condition=8, stop_resample_grad=False),
     (2, 16), variant("scannet", loss__lambda_normal=0.05, loss__lambda_orientation=0.05), 0.3, 4, True, 1,
     {"normals": True}),
    # ray_shape 'cylinder' (the fork casts cones whatever it says), disparity sampling, PE (no IPE).
    ("cylinder_disparity_pe_l2_s8_b5", dict(num_samples=8, num_levels=2, max_deg_point=5, deg_view=3,
                                            mlp_net_depth=2, mlp_net_width=16, mlp_net_width_condition=8,
                                            ray_shape="cylinder", disparity=True, disable_integration=True,
                                            density_bias=0.0, rgb_padding=0.01),
     (2, 16), variant("matterport", loss__lambda_depth=0.02), 0.45, 5, False, 1),
    # Depth-guided sampling: a quarter of the first level's samples drawn around the depth with the
    # learned std exp(-variance) (torch's generator seeded; every ray has a depth, so the draws are
    # one randn [B, n / 4], the same in the port).
    ("depth_sampling_l3_s8_b4", dict(num_samples=8, num_levels=3, max_deg_point=5, mlp_net_depth=2,
                                     mlp_net_width=16, mlp_net_width_condition=8, depth_sampling=True),
     (2, 16), CONFIGS["lego"], 0.3, 4, True, 1, {"all_depth": True, "torch_seed": 5}),
    # Randomized (stratified and inverse-CDF) sampling from torch's seeded generator: the port draws the
    # same numbers in the same order.
    ("randomized_l3_s8_b6", dict(num_samples=8, num_levels=3, max_deg_point=6, mlp_net_depth=3,
                                 mlp_net_width=16, mlp_net_width_condition=8, mlp_skip_index=4),
     (2, 16), variant("scannet", loss__lambda_depth=0.02), 0.2, 6, True, 1,
     {"randomized": True, "torch_seed": 23}),
]
STEP_LOSSES = ["total", "rgb", "depth", "normal", "orientation", "distortion", "empty", "near", "envelope", "psnr",
               "chord"]
STEP_RESULTS = ["rgb_coarse", "rgb_fine", "depth", "weights", "distortion", "envelope_loss", "density_normals",
                "mlp_normals"]


def step_rays(rng, batch, all_depth=False):
    """Rays (as arrays, the fork's fields) of cameras on a radius-4 sphere looking near the origin, with
    unnormalised directions, depth (0 = none) and GT normals (some zero), and the rgb targets."""
    origins = unit(rng, (batch, 3)) * 4.0
    view = unit(rng, (batch, 3)) * 0.15 - origins / 4.0
    viewdirs = view / np.linalg.norm(view, axis=-1, keepdims=True)
    directions = viewdirs * rng.uniform(1.0, 1.2, (batch, 1))
    depth = rng.uniform(3.2, 4.8, (batch, 1))
    if not all_depth:
        depth[1::3] = 0.0
    normal = unit(rng, (batch, 3))
    normal[2::4] = 0.0
    rays = {"origins": origins, "directions": directions, "viewdirs": viewdirs,
            "radii": np.full((batch, 1), 0.0015), "lossmult": np.ones((batch, 1)), "near": np.full((batch, 1), 2.0),
            "far": np.full((batch, 1), 6.0), "depth": depth, "normal": normal, "mask": depth <= 0,
            "depth_vars": np.zeros((batch, 1)), "cam_idx": np.zeros((batch, 1))}
    rays = {k: v if v.dtype == bool else v.astype(np.float32) for k, v in rays.items()}
    return rays, rng.uniform(size=(batch, 3)).astype(np.float32)


def step_cases(mip_nerf, loss_mod, rng):
    """One training step of the fork per STEP_SETUPS entry: results, losses and every gradient."""
    cases = []
    for i, (name, kwargs, (prop_depth, prop_width), hparams, eps, batch, white_bkgd, accum, *opts) in \
            enumerate(STEP_SETUPS):
        opts = opts[0] if opts else {}
        normals = opts.get("normals", False)
        kwargs = dict({"mlp_normals": False, **kwargs}, prop_mlp=True, num_glo_features=0, num_glo_embeddings=0)
        torch.manual_seed(100 + i)
        model = mip_nerf.MipNerf(**kwargs)
        xyz_dim = (kwargs["max_deg_point"] - kwargs.get("min_deg_point", 0)) * 6
        # The fork hard-codes a 4 x 256 proposal MLP; the fork's own MLP class of a smaller size keeps the
        # case small (the port's prop_net_depth / prop_net_width).
        model.prop_mlp = mip_nerf.MLP(prop_depth, prop_width, 1, 128, 8, 3, 1, "relu", xyz_dim, 0, prop_mlp=True)
        # Non-zero biases, so that their gradients are tested with the weights'.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("bias"):
                    p.copy_(0.1 * torch.randn_like(p))
        rays_np, rgbs = step_rays(rng, batch, opts.get("all_depth", False))
        Rays = sys.modules["datasets.datasets"].Rays
        rays = Rays(*[torch.from_numpy(rays_np[f]) for f in RAYS_FIELDS])
        if "torch_seed" in opts:
            torch.manual_seed(opts["torch_seed"])
        randomized = opts.get("randomized", False)
        ret = model(rays, randomized, white_bkgd, normals, eps, zero_glo=False)
        targets = {"rgb": torch.from_numpy(rgbs)[..., :3], "depth": rays.depth.view(-1), "normal": rays.normal,
                   "dirs": rays.viewdirs, "var": rays.depth_vars, "dmask": rays.mask.view(-1)}
        losses = loss_mod.MSELoss(hparams)(ret, targets, step=1)
        losses["total"].sum().backward()
        arrays = {f"in_rays_{f}": rays_np[f] for f in RAYS_FIELDS}
        arrays["in_rgbs"] = rgbs
        arrays.update({f"in_params_{k}": np32(v) for k, v in model.state_dict().items()})
        arrays.update({f"out_{k}": np32(losses[k]).astype(np.float32) for k in STEP_LOSSES})
        # The zero placeholders of normals not computed are left out (the fork shapes them [B, 32, 3]
        # whatever the last level's sample count).
        results = [k for k in STEP_RESULTS if not ((k == "density_normals" and not normals) or
                                                   (k == "mlp_normals" and not kwargs["mlp_normals"]))]
        arrays.update({f"out_ret_{k}": np32(ret[k]) for k in results})
        grads = [k for k, p in model.named_parameters() if p.grad is not None]
        arrays.update({f"out_grad_{k}": np32(p.grad) for k, p in model.named_parameters() if p.grad is not None})
        static = {**{f"MipNerf.{k}": v for k, v in kwargs.items()},
                  "MipNerf.prop_net_depth": prop_depth, "MipNerf.prop_net_width": prop_width,
                  "MipNerf.num_fine_samples": 32, **hparams, "eps": eps, "randomized": randomized,
                  "white_bkgd": white_bkgd, "compute_density_normals": normals, "grad_accum_steps": accum}
        if "torch_seed" in opts:
            static["torch_seed"] = opts["torch_seed"]
        case = f"gen_train_step_{name}.npz"
        note = (
            "WHOLE-STEP case: the fork's MipNeRFSystem.training_step on one batch (zero_glo False): MipNerf "
            "forward (num_levels-1 proposal levels + the NeRF level of 32 samples, hard-coded in the fork) -> "
            "MSELoss(hparams)(ret, targets) -> total.backward(). Build the port's MipNerf from the static "
            "'MipNerf.<kwarg>' values (the fork's constructor arguments; prop_net_depth / prop_net_width: the "
            "fork hard-codes a 4 x 256 proposal MLP, the case swaps in the fork's MLP class of this size, "
            "skip_index 8), load the state dict in_params_<name> (the fork's names), the loss from the static "
            "'loss.*' / 'nerf.mlp.*' keys; rays in_rays_<field> (the fork's Rays fields), targets rgb = in_rgbs, "
            "depth/normal/dirs/dmask from the rays; eps, randomized, white_bkgd, compute_density_normals from "
            "static; a static torch_seed seeds torch's generator right before the forward (randomized or "
            "depth-guided sampling draw from it). The port runs it with depth_mipnerf.train.backward_batch in "
            "static grad_accum_steps micro-batches (their gradients must add up to the fork's one-shot step). "
            "Outputs: the losses, ret_<key> of the model's results (the last level's; rgb_coarse = the level "
            "before the last; normals only where computed), grad_<name> of every parameter the step gives a "
            "gradient. atol 1e-7 on gradients whose largest entries are 1e-2..1e-1 (the proposal MLP's, reached "
            "only by the small envelope loss, 1e-5..1e-4): float32 sums in another order; the port measured at "
            "most 2.2e-8 absolute (the 2-micro-batch case), 3e-9 in one shot.")
        cases.append((case, arrays, entry(case, "depth_mipnerf.train:backward_batch",
                                          "MipNeRFSystem.training_step", ["params", "rays", "rgbs"], static,
                                          STEP_LOSSES + [f"ret_{k}" for k in results] +
                                          [f"grad_{k}" for k in grads], note,
                                          rtol=1e-5, atol=1e-7, path="models/nerf_system.py")))
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", required=True, help="work tree of AlexSheldrick/mipnerf_pl@" + COMMIT)
    parser.add_argument("--out", default="tests/golden/depth_mipnerf")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    torch.set_num_threads(1)
    mip_nerf, loss_mod = load_original(args.original)
    rng = np.random.default_rng(args.seed)
    cases = ray_loss_cases(mip_nerf, rng) + mse_loss_cases(mip_nerf, loss_mod, rng)
    cases += step_cases(mip_nerf, loss_mod, rng)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
    new_names = {name for name, _, _ in cases}
    manifest = [e for e in manifest if e["case"] not in new_names]
    for name, arrays, man in cases:
        np.savez_compressed(out / name, **arrays)
        manifest.append(man)
    manifest_path.write_text(json.dumps(manifest, indent=1))
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
