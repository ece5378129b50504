"""Writes golden cases for the `mine` port by running the ORIGINAL vincentfung13/MINE code on CPU.

    python tests/golden/tools/gen_mine.py --original /tmp/orig_mine --out tests/golden/mine

--original is a checkout (or `git archive`) of vincentfung13/MINE at --commit; it is imported from
there and never copied. Run it with a Python that has torch (2.13 CPU), torchvision, kornia, numpy
and scipy, not the project's venv. The original assumes a GPU and a few heavy imports; the shims
below only make it importable and runnable on CPU: `Tensor.cuda` returns the tensor itself,
`torch.cuda.synchronize` does nothing, `cv2` / `matplotlib` / `lpips` are empty modules (unused on
the paths run here), torchvision's meta registrations are skipped (its C extension may not load; the
ResNet definitions are pure Python), and the ResNet encoder's ImageNet mean/std are made on the CPU.

Every case is seeded; running the script again rewrites the same files and replaces the manifest
entries of the same case names (other entries are kept). The cases written here are the `*_x_*`
ones (point 2 of issue 17) and `synthesis_task_step_*` (a whole training step).
"""

import argparse
import json
import math
import pathlib
import sys
import types

import numpy as np
import torch

COMMIT = "ef16cd83ae99c70f7970a583c533016c63587373"


# ----------------------------------------------------------------------------------------------- shims
def install_shims(original):
    for name in ("cv2", "lpips", "matplotlib", "matplotlib.pyplot", "torchvision._meta_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["matplotlib"].pyplot = sys.modules["matplotlib.pyplot"]
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.cuda.synchronize = lambda *args, **kwargs: None
    sys.path.insert(0, str(original))


def cpu_resnet_encoder(ResnetEncoder, num_layers):
    """The original ResnetEncoder(num_layers, pretrained=False) with its mean/std tensors on the CPU."""
    tensor = torch.tensor

    def cpu_tensor(*args, **kwargs):
        kwargs.pop("device", None)
        return tensor(*args, **kwargs)

    torch.tensor = cpu_tensor
    try:
        return ResnetEncoder(num_layers=num_layers, pretrained=False)
    finally:
        torch.tensor = tensor


# ----------------------------------------------------------------------------------------------- helpers
def ref(path, function):
    return f"vincentfung13/MINE@{COMMIT}:{path}:{function}"


def np32(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def fill_value(key, k, shape):
    """Deterministic value of the k-th entry (in sorted state-dict key order) of a module's state dict.

    The same fill as the existing depth_decoder_forward_0 case (its notes give the formula).
    """
    n = int(np.prod(shape))
    base = np.sin(0.7 * np.arange(n, dtype=np.float64) + 0.3 * (k + 1))
    if len(shape) >= 2:
        value = base * np.sqrt(3 / (n / shape[0]))
    elif key.endswith("running_var"):
        value = 1 + 0.25 * (1 + base)
    elif key.endswith("running_mean"):
        value = 0.1 * base
    elif key.endswith("weight"):
        value = 1 + 0.1 * base
    else:
        value = 0.1 * base
    return torch.from_numpy(value.astype(np.float32).reshape(shape))


def fill_module(module):
    state = module.state_dict()
    values = {key: fill_value(key, k, state[key].shape) for k, key in enumerate(sorted(state))
              if state[key].is_floating_point()}
    module.load_state_dict({**state, **values})


FILL_NOTES = ("Weights are not stored: for k, key in enumerate(sorted(module.state_dict())) (non-float buffers such "
              "as num_batches_tracked keep their index k but are not filled): n=numel, base=sin(0.7*arange(n, "
              "float64)+0.3*(k+1)); ndim>=2: base*sqrt(3/(n/shape[0])); running_var: 1+0.25*(1+base); running_mean: "
              "0.1*base; other 'weight': 1+0.1*base; else (bias): 0.1*base; float32, reshaped.")


def rotation(axis, angle):
    axis = np.asarray(axis, np.float64)
    axis = axis / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def pose(R, t):
    G = np.eye(4)
    G[:3, :3] = R
    G[:3, 3] = t
    return G.astype(np.float32)


def intrinsics(H, W, f_scale=1.0):
    f = f_scale * W / 2.0
    return np.array([[f, 0, W / 2.0], [0, f, H / 2.0], [0, 0, 1]], np.float32)


class Writer:
    def __init__(self, out):
        self.out = pathlib.Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.out / "manifest.json"
        self.manifest = json.loads(self.manifest_path.read_text()) if self.manifest_path.exists() else []

    def add(self, case, function, reference, inputs, static, outputs, rtol, atol, notes, compressed=False):
        arrays = {f"in_{k}": np.asarray(v) for k, v in inputs.items()}
        arrays.update({f"out_{k}": np.asarray(v) for k, v in outputs.items()})
        (np.savez_compressed if compressed else np.savez)(self.out / case, **arrays)
        entry = {"case": case, "function": function, "reference": reference, "args": list(inputs_args(inputs, static)),
                 "static": static, "outputs": list(outputs), "rtol": rtol, "atol": atol, "notes": notes}
        names = [e["case"] for e in self.manifest]
        if case in names:  # replaced where it stands: a re-run leaves the manifest's order alone
            self.manifest[names.index(case)] = entry
        else:
            self.manifest.append(entry)
        size = (self.out / case).stat().st_size
        print(f"{case}: {size / 1024:.1f} KiB")

    def save(self):
        self.manifest_path.write_text(json.dumps(self.manifest, indent=1) + "\n")


def inputs_args(inputs, static):
    return static.pop("__args__") if "__args__" in static else list(inputs)


# ----------------------------------------------------------------------------------------------- point 2
def gen_homography(w, rng):
    from operations.homography_sampler import HomographySample

    fn = "mine.operations.homography_sampler:HomographySample.sample"
    reference = ref("operations/homography_sampler.py", "HomographySample.sample")
    args = ["src_BCHW", "d_src_B", "G_tgt_src", "K_src_inv", "K_tgt"]
    variants = [
        # name, H, W, C, depths, rotations (axis, degrees), translations
        ("grazing", 10, 14, 4, [2.0, 2.0, 3.0, 1.5],
         [((0, 1, 0), 70), ((0, 1, 0), 80), ((1, 0, 0), 85), ((1, 1, 0), 89)],
         [(0.3, 0, 0.1), (0.5, 0.1, 0), (0, 0.4, 0.2), (0.2, 0.2, 0.2)]),
        ("far", 7, 9, 3, [1000.0, 500.0, 1e4, 333.3],
         [((0, 1, 0), 5), ((1, 0, 0), 10), ((0, 0, 1), 20), ((1, 1, 1), 3)],
         [(2.0, 0, 0), (0, -3.0, 1.0), (1.0, 1.0, -2.0), (0.1, 0.1, 0.1)]),
        ("tall", 16, 5, 7, [1.0, 4.0, 0.8],
         [((0, 1, 0), 3), ((1, 0, 0), -4), ((0, 0, 1), 8)],
         [(0.05, 0, 0), (0, 0.1, 0.05), (-0.1, 0.02, -0.05)]),
        ("wide", 3, 20, 1, [1.5, 2.5],
         [((0, 1, 0), -6), ((1, 0, 1), 2)],
         [(-0.1, 0, 0.2), (0, 0, -0.3)]),
    ]
    for name, H, W, C, depths, rots, ts in variants:
        B = len(depths)
        src = rng.uniform(0, 1, (B, C, H, W)).astype(np.float32)
        K = intrinsics(H, W, rng.uniform(0.8, 1.2))
        G = np.stack([pose(rotation(a, math.radians(d)), t) for (a, d), t in zip(rots, ts)])
        inputs = {"src_BCHW": src, "d_src_B": np.array(depths, np.float32), "G_tgt_src": G,
                  "K_src_inv": np.repeat(np.linalg.inv(K)[None].astype(np.float32), B, 0),
                  "K_tgt": np.repeat(K[None], B, 0)}
        t = {k: torch.from_numpy(v) for k, v in inputs.items()}
        tgt, mask = HomographySample(H, W).sample(*(t[a] for a in args))
        w.add(f"homography_sample_x_{name}.npz", fn, reference, inputs,
              {"constructor": {"H_tgt": H, "W_tgt": W}}, {"tgt_BCHW": np32(tgt), "valid_mask": np32(mask)},
              1e-4, 1e-4,
              f"Call HomographySample(H_tgt, W_tgt).sample(...). d_src_B: plane depth. valid_mask bool, exact. "
              f"Variant '{name}' ({'planes seen nearly edge-on: some target pixels map from behind the source camera' if name == 'grazing' else 'far planes (depth up to 1e4)' if name == 'far' else 'non-square size'}).")


def tgt_xyz(H, W, disparity, K_src_inv, G):
    from operations import mpi_rendering
    from operations.homography_sampler import HomographySample

    sampler = HomographySample(H, W)
    xyz_src = mpi_rendering.get_src_xyz_from_plane_disparity(sampler.meshgrid, disparity, K_src_inv)
    return sampler, mpi_rendering.get_tgt_xyz_from_plane_disparity(xyz_src, G)


def gen_render_tgt(w, rng):
    from operations import mpi_rendering

    fn = "mine.operations.mpi_rendering:render_tgt_rgb_depth"
    reference = ref("operations/mpi_rendering.py", "render_tgt_rgb_depth")
    args = ["mpi_rgb_src", "mpi_sigma_src", "mpi_disparity_src", "xyz_tgt_BS3HW", "G_tgt_src", "K_src_inv", "K_tgt"]
    variants = [
        # name, H, W, S, use_alpha, is_bg_depth_inf, rotations, translations, disparity range
        ("grazing", 8, 12, 5, False, False, [((0, 1, 0), 75), ((1, 0, 0), 82)], [(0.3, 0, 0.1), (0, 0.2, 0.3)],
         (1.0, 0.05)),
        ("grazing_bg", 8, 12, 5, False, True, [((0, 1, 0), 75), ((1, 0, 0), 60)], [(0.3, 0, 0.1), (0, 0.2, 0.3)],
         (1.0, 0.05)),
        ("bg", 9, 7, 6, False, True, [((0, 1, 0), 4), ((1, 1, 0), -3)], [(0.1, 0, 0.05), (-0.05, 0.1, 0)],
         (1.0, 0.001)),
        ("alpha_grazing", 8, 12, 4, True, False, [((0, 1, 0), 78), ((0, 0, 1), 30)], [(0.2, 0.1, 0), (0.1, 0, 0.3)],
         (2.0, 0.1)),
        ("alpha_bg", 6, 10, 4, True, True, [((0, 1, 0), 5), ((1, 0, 0), -5)], [(0.1, 0, 0), (0, 0.1, 0.1)],
         (1.0, 0.01)),
        ("far", 5, 16, 3, False, False, [((0, 1, 0), 10), ((1, 0, 0), 15)], [(2.0, 0, 0), (0, 1.0, -1.0)],
         (0.01, 0.0001)),
    ]
    for name, H, W, S, use_alpha, bg, rots, ts, (d0, d1) in variants:
        B = len(rots)
        K = intrinsics(H, W, rng.uniform(0.8, 1.2))
        G = torch.from_numpy(np.stack([pose(rotation(a, math.radians(d)), t) for (a, d), t in zip(rots, ts)]))
        edges = np.linspace(d0, d1, S + 1)
        disparity = (edges[:-1] + (edges[1:] - edges[:-1]) * rng.uniform(0.1, 0.9, (B, S))).astype(np.float32)
        K_src_inv = torch.from_numpy(np.repeat(np.linalg.inv(K)[None].astype(np.float32), B, 0))
        sampler, xyz = tgt_xyz(H, W, torch.from_numpy(disparity), K_src_inv, G)
        sigma = rng.uniform(0, 1, (B, S, 1, H, W)) if use_alpha else rng.exponential(1.0, (B, S, 1, H, W)) + 1e-4
        inputs = {"mpi_rgb_src": rng.uniform(0, 1, (B, S, 3, H, W)).astype(np.float32),
                  "mpi_sigma_src": sigma.astype(np.float32), "mpi_disparity_src": disparity,
                  "xyz_tgt_BS3HW": np32(xyz), "G_tgt_src": np32(G), "K_src_inv": np32(K_src_inv),
                  "K_tgt": np.repeat(K[None], B, 0)}
        t = {k: torch.from_numpy(v) for k, v in inputs.items()}
        rgb, depth, mask = mpi_rendering.render_tgt_rgb_depth(sampler, *(t[a] for a in args), use_alpha=use_alpha,
                                                              is_bg_depth_inf=bg)
        w.add(f"render_tgt_rgb_depth_x_{name}.npz", fn, reference, inputs,
              {"H_sampler": {"constructor": "HomographySample", "H_tgt": H, "W_tgt": W}, "use_alpha": use_alpha,
               "is_bg_depth_inf": bg},
              {"tgt_rgb_syn": np32(rgb), "tgt_depth_syn": np32(depth), "tgt_mask": np32(mask)},
              2e-4, 2e-3 if bg else 2e-4,
              "First argument is HomographySample(H,W) built from static.H_sampler. xyz_tgt_BS3HW = "
              "get_tgt_xyz_from_plane_disparity(get_src_xyz_from_plane_disparity(meshgrid, disp, K_src_inv), G). "
              f"Variant '{name}'." + (" is_bg_depth_inf adds (1 - sum w) * 1000 to the depth: atol 2e-3 (float32 "
                                      "rounding of the weight sum, times 1000)." if bg else ""))


def gen_scale_factor(w, rng):
    from synthesis_task import SynthesisTask

    fn = "mine.synthesis_task:SynthesisTask.compute_scale_factor"
    reference = ref("synthesis_task.py", "SynthesisTask.compute_scale_factor")
    for name, B, N in (("llff", 2, 32), ("kitti_raw", 4, 8), ("dtu", 3, 5), ("realestate10k", 1, 64),
                       ("flowers", 2, 3)):
        task = SynthesisTask.__new__(SynthesisTask)
        task.config = {"data.name": name}
        syn = rng.uniform(0.02, 1.5, (B, 1, N)).astype(np.float32)
        gt = (syn * rng.uniform(0.2, 5.0, (B, 1, 1)) * rng.uniform(0.8, 1.25, (B, 1, N))).astype(np.float32)
        out = task.compute_scale_factor(torch.from_numpy(syn), torch.from_numpy(gt))
        w.add(f"compute_scale_factor_x_{name}.npz", fn, reference, {"disparity_syn_pt3dsrc": syn, "pt3d_disp_src": gt},
              {"config": {"data.name": name}}, {"0": np32(out)}, 1e-5, 1e-6,
              "Method; only self.config['data.name'] is read. scale = exp(mean_N(log syn - log gt)) (shape B); "
              "ones(B) for flowers/kitti_raw/dtu.")


def gen_embedder(w, rng):
    from utils import get_embedder

    fn = "mine.utils:get_embedder"
    reference = ref("utils.py", "get_embedder")
    for multires, shape in ((1, (4, 1)), (2, (3, 1)), (4, (6, 1)), (4, (2, 3, 1)), (6, (5, 3)), (16, (4, 1)),
                            (0, (3, 1))):
        x = rng.uniform(-3.0, 3.0, shape)
        x = x.astype(np.float32)
        embed, out_dim = get_embedder(multires)
        out = embed(torch.from_numpy(x))
        tag = "x".join(map(str, shape))
        w.add(f"get_embedder_x_m{multires}_{tag}.npz", fn, reference, {"x": x}, {"multires": multires},
              {"0": np32(out), "out_dim": np.float32(out_dim)}, 1e-5, 1e-5 * max(1, 2 ** multires / 512),
              "embed, out_dim = get_embedder(multires); out_0 = embed(x) (x [..., d]; the original counts d=1 in "
              "out_dim, whatever x's last size: include_input is always on). Layout per frequency f_i = "
              "2**linspace(0, multires-1, multires): [x, sin(x f_0), cos(x f_0), sin(x f_1), ...], each d wide."
              + (" Large frequencies: atol scales with 2**multires (float32 argument rounding)." if multires > 9
                 else ""))


def gen_decoder(w, rng):
    from network.monodepth2.depth_decoder import DepthDecoder
    from utils import get_embedder

    fn = "mine.network.monodepth2.depth_decoder:DepthDecoder.forward"
    reference = ref("network/monodepth2/depth_decoder.py", "DepthDecoder.forward")
    variants = [
        # name, num_ch_enc, multires, (H, W), B, S, scales, use_alpha, use_skips
        ("c8_m4", [2, 4, 8, 16, 24], 4, (128, 128), 1, 2, [2, 3], False, True),
        ("c4_m6_128x256", [1, 2, 4, 8, 16], 6, (128, 256), 2, 2, [3], False, True),
        ("alpha_noskip_m2_256x128", [1, 1, 2, 2, 2], 2, (256, 128), 1, 2, [2, 3], True, False),
        ("m8_s13", [1, 2, 2, 4, 8], 8, (128, 128), 1, 2, [1, 3], False, True),
    ]
    for name, ch, multires, (H, W), B, S, scales, use_alpha, use_skips in variants:
        torch.manual_seed(0)
        embed, out_dim = get_embedder(multires)
        decoder = DepthDecoder(num_ch_enc=np.array(ch), embedder=embed, embedder_out_dim=out_dim, use_alpha=use_alpha,
                               num_output_channels=4, scales=scales, use_skips=use_skips)
        fill_module(decoder)
        decoder.eval()
        feats = {f"feat{i}": rng.normal(0, 1, (B, c, H // 2 ** (i + 1), W // 2 ** (i + 1))).astype(np.float32)
                 for i, c in enumerate(ch)}
        edges = np.linspace(1.0, 0.001, S + 1)
        disparity = (edges[:-1] + (edges[1:] - edges[:-1]) * rng.uniform(0, 1, (B, S))).astype(np.float32)
        with torch.no_grad():
            out = decoder([torch.from_numpy(feats[f"feat{i}"]) for i in range(5)], torch.from_numpy(disparity))
        state = decoder.state_dict()
        keys = sorted(k for k, v in state.items() if v.is_floating_point())
        w.add(f"depth_decoder_forward_x_{name}.npz", fn, reference, {**feats, "disparity": disparity},
              {"constructor": {"num_ch_enc": ch, "embedder": f"get_embedder({multires})[0]",
                               "embedder_out_dim": out_dim, "use_alpha": use_alpha, "num_output_channels": 4,
                               "scales": scales, "use_skips": use_skips},
               "call": "forward([feat0..feat4], disparity)", "state_dict_float_keys_sorted": keys},
              {f"disp_{s}": np32(out[("disp", s)]) for s in scales}, 1e-3, 1e-4,
              FILL_NOTES + " Module in eval() mode. Output disp_s is outputs[('disp', s)] for s in static "
              "constructor.scales (BxSx4xH/2^sxW/2^s). The embedder is get_embedder(M)[0] with M read from "
              "constructor.embedder. Channel counts other than ResNet's keep the case small.")


# ----------------------------------------------------------------------------------------------- point 3
def smooth_image(rng, B, H, W):
    """Smooth random colour images with a few hard edges, quantised to k/255 (they compress well)."""
    y, x = np.meshgrid(np.arange(H) / H, np.arange(W) / W, indexing="ij")
    imgs = np.zeros((B, 3, H, W))
    for b in range(B):
        for c in range(3):
            img = 0.5 + sum(rng.uniform(-0.2, 0.2) * np.sin(2 * np.pi * (rng.uniform(0.5, 3) * x + rng.uniform(0.5, 3)
                                                                          * y) + rng.uniform(0, 6)) for _ in range(3))
            img += 0.2 * ((x - rng.uniform(0.3, 0.7)) * rng.uniform(-1, 1) + (y - 0.5) > 0)
            imgs[b, c] = img
    return (np.round(np.clip(imgs, 0, 1) * 255) / 255).astype(np.float32)


STEP_KEYS = ("loss", "loss_rgb_src", "loss_ssim_src", "loss_disp_pt3dsrc", "loss_smooth_src", "loss_smooth_tgt",
             "loss_smooth_src_v2", "loss_smooth_tgt_v2", "loss_rgb_tgt", "loss_ssim_tgt", "lpips_tgt", "psnr_tgt",
             "loss_disp_pt3dtgt")
GRAD_SAMPLES = 256
GOLDEN = 0.6180339887498949


def grad_sample_index(numel):
    """Indices of the stored gradient entries: all when numel <= 256, else floor(frac((j + 1) * 0.618...) * numel)
    for j = 0 .. 255 (a low-discrepancy spread that no kernel layout aliases with)."""
    if numel <= GRAD_SAMPLES:
        return np.arange(numel)
    return np.floor(np.mod((np.arange(GRAD_SAMPLES) + 1) * GOLDEN, 1.0) * numel).astype(np.int64)


def is_zero_grad(key):
    """The bias of a ConvBlock's conv: a train-mode BatchNorm follows, so its exact gradient is 0 (float noise)."""
    return key.startswith("decoder.convs.") and key.endswith(".conv.conv.bias")


def gen_step(w, rng, name, config_over, B=2, H=128, W=128, S=4, N_pt=16):
    import torch.nn as nn

    import synthesis_task as st
    from network.monodepth2.depth_decoder import DepthDecoder
    from network.monodepth2.resnet_encoder import ResnetEncoder
    from network.ssim import SSIM
    from operations.homography_sampler import HomographySample
    from utils import get_embedder

    config = {"data.name": "llff", "data.img_h": H, "data.img_w": W, "data.per_gpu_batch_size": B,
              "data.num_tgt_views": 1, "data.visible_point_count": N_pt, "model.pos_encoding_multires": 10,
              "model.num_layers": 18, "model.imagenet_pretrained": False, "mpi.num_bins_coarse": S,
              "mpi.num_bins_fine": 0, "mpi.disparity_start": 1.0, "mpi.disparity_end": 0.001,
              "mpi.valid_mask_threshold": 2, "mpi.fix_disparity": False, "mpi.use_alpha": False,
              "loss.smoothness_lambda_v1": 0.5, "loss.smoothness_gmin": 2.0, "loss.smoothness_grad_ratio": 0.1,
              "loss.smoothness_lambda_v2": 0.01, "training.src_rgb_blending": True, "training.use_multi_scale": True,
              "lr.backbone_lr": 1e-3, "lr.decoder_lr": 1e-3, "lr.weight_decay": 4e-5, "lr.decay_steps": [5, 10],
              "lr.decay_gamma": 0.1, "training.pretrained_checkpoint_path": None, "training.epochs": 1,
              "training.eval_interval": 1000, **config_over}

    # The batch: a source and one target view of a scene 1.5 .. 8 units away, sparse points seen by both.
    K = intrinsics(H, W, 1.1)
    imgs = smooth_image(rng, 2 * B, H, W)
    G_src_tgt = np.stack([pose(rotation(rng.normal(size=3), math.radians(rng.uniform(1, 4))),
                               rng.uniform(-0.15, 0.15, 3)) for _ in range(B)])
    G_tgt_src = np.linalg.inv(G_src_tgt.astype(np.float64))
    px = np.stack([rng.uniform(2, W - 3, (B, N_pt)), rng.uniform(2, H - 3, (B, N_pt)), np.ones((B, N_pt))], 1)
    depth = rng.uniform(1.5, 8.0, (B, 1, N_pt))
    xyz_src = np.einsum("ij,bjn->bin", np.linalg.inv(K.astype(np.float64)), px) * depth
    xyz_tgt = np.einsum("bij,bjn->bin", G_tgt_src[:, :3, :3], xyz_src) + G_tgt_src[:, :3, 3:]
    edges = np.linspace(config["mpi.disparity_start"], config["mpi.disparity_end"], S + 1)
    disparity = (edges[:-1] + (edges[1:] - edges[:-1]) * rng.uniform(0, 1, (B, S))).astype(np.float32)
    batch = {"src_img": imgs[:B], "src_K": np.repeat(K[None], B, 0),
             "src_K_inv": np.repeat(np.linalg.inv(K)[None], B, 0).astype(np.float32),
             "src_xyzs": xyz_src.astype(np.float32), "tgt_img": imgs[B:, None],
             "tgt_K": np.repeat(K[None, None], B, 0), "tgt_K_inv": np.repeat(np.linalg.inv(K)[None, None], B, 0)
             .astype(np.float32), "tgt_G_src_tgt": G_src_tgt[:, None], "tgt_xyzs": xyz_tgt[:, None].astype(np.float32),
             "disparity": disparity}

    # The task as SynthesisTask.__init__ builds it (ResNet-18, no DDP / SyncBatchNorm: one process), CPU.
    task = st.SynthesisTask.__new__(st.SynthesisTask)
    task.config = config
    task.embedder, out_dim = get_embedder(config["model.pos_encoding_multires"])
    task.backbone = cpu_resnet_encoder(ResnetEncoder, 18)
    task.decoder = DepthDecoder(num_ch_enc=task.backbone.num_ch_enc, use_alpha=config["mpi.use_alpha"],
                                num_output_channels=4, scales=range(4), use_skips=True, embedder=task.embedder,
                                embedder_out_dim=out_dim)
    fill_module(task.backbone)
    fill_module(task.decoder)
    task.backbone.train()
    task.decoder.train()
    task.homography_sampler_list = [HomographySample(H // 2 ** s, W // 2 ** s) for s in range(4)]
    task.upsample_list = [nn.Identity()] + [nn.Upsample(size=(H // 2 ** s, W // 2 ** s)) for s in range(1, 4)]
    task.ssim = SSIM(size_average=True)
    task.init_data(torch.device("cpu"))
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
    task.set_data(({"img": t["src_img"], "K": t["src_K"], "K_inv": t["src_K_inv"], "xyzs": t["src_xyzs"]},
                   {"img": t["tgt_img"], "K": t["tgt_K"], "K_inv": t["tgt_K_inv"], "G_src_tgt": t["tgt_G_src_tgt"],
                    "xyzs": t["tgt_xyzs"]}))
    # The plane disparities are the stored ones, not a random draw.
    st._get_disparity_list = lambda config, B, device=None: t["disparity"].clone()

    loss_dict, _ = task.loss_fcn(is_val=False)
    loss_dict["loss"].backward()

    outputs = {k: np32(loss_dict[k]).astype(np.float32) for k in STEP_KEYS}
    grad_keys, none_keys, log_norms = [], [], []
    for module_name, module in (("backbone", task.backbone), ("decoder", task.decoder)):
        for key, p in module.named_parameters():
            key = f"{module_name}.{key}"
            if p.grad is None:
                none_keys.append(key)
                continue
            grad_keys.append(key)
            g = p.grad.double().reshape(-1)
            sample = g[torch.from_numpy(grad_sample_index(g.numel()))]
            if is_zero_grad(key):
                assert g.norm() < 1e-5, (key, float(g.norm()))
                outputs[f"grad_{key}"] = np32(sample).astype(np.float32)
            else:
                outputs[f"grad_{key}"] = np32(sample / g.norm()).astype(np.float32)
                log_norms.append(float(torch.log(g.norm())))
    outputs["grad_log_norms"] = np.array(log_norms, np.float32)
    static = {"__args__": [], "config": config, "grad_keys": grad_keys, "grad_none_keys": none_keys,
              "grad_samples": GRAD_SAMPLES,
              "state_dict_keys_sorted": {"backbone": sorted(task.backbone.state_dict()),
                                         "decoder": sorted(task.decoder.state_dict())}}
    w.add(f"synthesis_task_step_{name}.npz", "mine.synthesis_task:SynthesisTask.loss_fcn",
          ref("synthesis_task.py", "SynthesisTask.loss_fcn"), batch, static, outputs, 1e-4, 5e-5,
          "One training step of SynthesisTask on CPU (ResNet-18 encoder, config in static.config, train mode: "
          "BatchNorm on batch statistics; no DDP/SyncBatchNorm, one process): set_data(batch) with src_items = "
          "{img: src_img, K: src_K, K_inv: src_K_inv, xyzs: src_xyzs}, tgt_items = {img: tgt_img, K: tgt_K, "
          "K_inv: tgt_K_inv, G_src_tgt: tgt_G_src_tgt, xyzs: tgt_xyzs}; loss_dict = loss_fcn(is_val=False); "
          "loss_dict['loss'].backward(). FIXED DISPARITIES: the original's _get_disparity_list (a random draw per "
          "bin) was replaced by one returning in_disparity (BxS); the port takes them as src_items['disparity']. "
          "Weights of the backbone (the torchvision ResNet-18 inside ResnetEncoder, key prefix encoder.) and of the "
          "decoder, each filled separately: " + FILL_NOTES + " Outputs: the losses of loss_dict; for each parameter with a "
          "gradient (static.grad_keys, named_parameters order) grad_<module>.<param> = the gradient g (flattened) at "
          "the entries idx (all when numel <= 256, else floor(frac((j+1)*0.6180339887498949)*numel), j < 256) "
          "divided by |g| (the gradient's direction), and grad_log_norms = log|g| of those parameters in order, EXCEPT the "
          "biases of the decoder ConvBlocks' convs (keys decoder.convs.*.conv.conv.bias): a train-mode BatchNorm "
          "follows them, their exact gradient is 0, and grad_<key> holds the raw entries (float noise below 1e-6), "
          "with no log norm. static.grad_none_keys have no gradient (the ResNet's fc layer). Tolerances: the "
          "gradients are compared as directions (g/|g|); summation order (thread count) moves them by up to "
          "2.2e-5 (log norms) and 1e-5 (directions) in the original itself (1 vs 2 threads), while the port matches "
          "the original at equal thread count to 5e-7: rtol 1e-4, atol 5e-5. The cases were made with 1 thread.",
          compressed=True)


def gen_steps(w, rng):
    # 256 x 128: the decoder's 1/128 bottleneck is 2 x 1, so its train-mode BatchNorm sees B x 2 values.
    gen_step(w, rng, "r18_llff_256x128", {}, B=2, H=256, W=128, S=4)
    gen_step(w, rng, "r18_kitti_alpha_128x256", {
        "data.name": "kitti_raw", "mpi.use_alpha": True, "model.pos_encoding_multires": 4,
        "mpi.disparity_start": 0.2, "loss.smoothness_lambda_v1": 0.0, "training.src_rgb_blending": False,
        "training.use_multi_scale": False, "mpi.valid_mask_threshold": 0}, B=2, H=128, W=256, S=3)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", required=True, help="vincentfung13/MINE checkout")
    parser.add_argument("--out", default="tests/golden/mine")
    parser.add_argument("--only", nargs="*", help="generator names to run (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the cases were made with 1)")
    args = parser.parse_args()
    install_shims(pathlib.Path(args.original).resolve())
    parser_threads = args.threads
    torch.set_num_threads(parser_threads)
    w = Writer(args.out)
    gens = {"homography": gen_homography, "render_tgt": gen_render_tgt, "scale_factor": gen_scale_factor,
            "embedder": gen_embedder, "decoder": gen_decoder,
            "step": gen_steps}
    for i, (name, gen) in enumerate(gens.items()):
        if args.only and name not in args.only:
            continue
        gen(w, np.random.default_rng(1700 + i))
    w.save()


if __name__ == "__main__":
    main()
