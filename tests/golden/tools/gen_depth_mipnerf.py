"""Writes golden cases for depth_mipnerf's ray-weight depth losses and its total loss (MSELoss.forward)
by running the ORIGINAL fork (AlexSheldrick/mipnerf_pl, branch depth-mipnerf) on seeded inputs.

    python tests/golden/tools/gen_depth_mipnerf.py --original /tmp/orig_depth_mipnerf \
        --out tests/golden/depth_mipnerf

`--original` is a work tree of the fork at the commit below (the script records that commit in each
case's `reference`). The fork's `models/mip_nerf.py` and `models/loss.py` are imported from there as
they are; the modules they import only for the model (`models.mip`, `utils.vis`, which pull in
torchvision, cv2, the datasets) are replaced by empty stand-ins, since none of the functions run here
touches them. Needs torch (2.13 was used), numpy, einops; runs on the CPU in a few seconds.

Cases are named `gen_*.npz`; running the script again replaces its own manifest entries (same case
name) and leaves every other entry as it was.
"""

import argparse
import importlib.util
import json
import pathlib
import sys
import types

import numpy as np
import torch

COMMIT = "e12007d28a329ab93b77108d6240f95e8dcead42"
REPO = "AlexSheldrick/mipnerf_pl"

RAYS_NOTE = ("`rays` is the fork's Rays namedtuple; only rays.depth ([B,1], 0 = no depth) is read: "
             "stored as in_rays_depth. ")


def load_original(root):
    """(mip_nerf, loss) modules of the fork at root, with stand-ins for its model-only imports."""
    root = pathlib.Path(root)
    sys.path.insert(0, str(root))
    models = types.ModuleType("models")
    models.__path__ = [str(root / "models")]
    sys.modules["models"] = models
    mip = types.ModuleType("models.mip")
    for name in ("sample_along_rays", "integrated_pos_enc", "pos_enc", "volumetric_rendering",
                 "resample_along_rays"):
        setattr(mip, name, None)
    sys.modules["models.mip"] = mip
    utils = types.ModuleType("utils")
    utils.__path__ = []
    vis = types.ModuleType("utils.vis")
    vis.l2_normalize = None
    sys.modules["utils"], sys.modules["utils.vis"] = utils, vis
    loaded = []
    for name in ("mip_nerf", "loss"):
        spec = importlib.util.spec_from_file_location(f"models.{name}", root / "models" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"models.{name}"] = module
        spec.loader.exec_module(module)
        loaded.append(module)
    return loaded


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
        case = f"gen_MSELoss_forward_{name}.npz"
        note = (
            "MSELoss(hparams=static).forward(results, targets); static holds the fork's flattened yaml keys "
            "by name (extra keys depth_loss/eps/beta name how results' empty_loss/near_loss were made: "
            f"{kind} with eps {eps}, beta {beta}). Every results entry is stored: rgb_fine, [rgb_coarse], "
            "depth=in_depth_pred, weights, t_samples, density_normals, [mlp_normals], distortion [B], empty_loss "
            "[1], near_loss [1], envelope_loss [B,N] (results['normal_lowerbound_error'] is zeros, unused by "
            "the total); targets: rgb=in_rgb_gt, depth=in_depth_gt, normal=in_normal_gt (all-zero = no GT "
            "normal), dirs, dmask (True = no depth). prop_mlp=False: rgb adds coarse_loss_mult * MSE of "
            "rgb_coarse and envelope is 0; mlp_normals=True: normal/chord average the self-supervised "
            "(mlp vs density normals) and supervised terms. A case with a `mask` arg (bool [B]) and a static "
            "'step' passes both to forward, which ignores them (the fork resets mask to None); "
            "normal_loss_lowerbounded and incomplete are the fork's always-zero entries.")
        cases.append((case, arrays, entry(case, "depth_mipnerf.models.loss:MSELoss.forward", "MSELoss.forward",
                                          args, static, LOSS_OUTPUTS, note, atol=1e-6,
                                          path="models/loss.py")))
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
