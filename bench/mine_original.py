"""Times vincentfung13/MINE's own MPI prediction and novel-view rendering on the CPU (bench/mine.py's twin).

    python bench/mine_original.py MINE_TREE [--size 384x256] [--planes 32,64] [--steps 3] [--num_layers 50] [--json]

Run with an interpreter that has torch, kornia, numpy, scipy and pyyaml (not the project venv); the original is
imported from MINE_TREE, never copied. Its GPU assumptions are shimmed as tests/golden/tools/gen_mine.py does:
`Tensor.cuda` returns the tensor, `torch.cuda.synchronize` does nothing, cv2 / lpips / matplotlib /
torchvision's meta registrations are empty modules, and the encoder's mean/std are made on the CPU. The task is
built as SynthesisTask.__init__ builds it for one process (ResNet-<num_layers> encoder, random weights, eval
mode; params_default.yaml <- params_realestate.yaml), without its optimizer, DDP and LPIPS.

MPI prediction is what visualizations/image_to_video.py's VideoGenerator.infer_network does for one image
(set_data, network_forward, source-RGB blending with mpi_rendering.render); rendering is one
SynthesisTask.render_novel_view at a new pose. Each is timed over --steps calls after a warm-up one. The last
line with --json is {"predict_s_N<planes>": s, "render_s_N<planes>": s, ...}.
"""

import argparse
import json
import os
import sys
import time
import types

import numpy as np
import torch
import yaml


def install_shims(tree):
    for name in ("cv2", "lpips", "matplotlib", "matplotlib.pyplot", "torchvision._meta_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["matplotlib"].pyplot = sys.modules["matplotlib.pyplot"]
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.cuda.synchronize = lambda *args, **kwargs: None
    sys.path.insert(0, os.path.abspath(tree))


def cpu_resnet_encoder(ResnetEncoder, num_layers):
    """ResnetEncoder(num_layers, pretrained=False) with its mean/std tensors on the CPU."""
    tensor = torch.tensor

    def cpu_tensor(*args, **kwargs):
        kwargs.pop("device", None)
        return tensor(*args, **kwargs)

    torch.tensor = cpu_tensor
    try:
        return ResnetEncoder(num_layers=num_layers, pretrained=False)
    finally:
        torch.tensor = tensor


def load_config(tree, width, height, planes):
    config = {}
    for name in ("params_default.yaml", "params_realestate.yaml"):
        with open(os.path.join(tree, "configs", name)) as f:
            config.update(yaml.safe_load(f))
    config.update({"data.img_w": width, "data.img_h": height, "mpi.num_bins_coarse": planes,
                   "data.per_gpu_batch_size": 1, "global_rank": 0, "model.imagenet_pretrained": False})
    return config


def build_task(config, num_layers):
    """The task as SynthesisTask.__init__ builds it in one process, on the CPU, in eval mode."""
    import synthesis_task as st
    import torch.nn as nn
    from network.monodepth2.depth_decoder import DepthDecoder
    from network.monodepth2.resnet_encoder import ResnetEncoder
    from operations.homography_sampler import HomographySample
    from utils import get_embedder

    task = st.SynthesisTask.__new__(st.SynthesisTask)
    task.config = config
    task.embedder, out_dim = get_embedder(config["model.pos_encoding_multires"])
    task.backbone = cpu_resnet_encoder(ResnetEncoder, num_layers)
    task.decoder = DepthDecoder(num_ch_enc=task.backbone.num_ch_enc, use_alpha=config.get("mpi.use_alpha", False),
                                num_output_channels=4, scales=range(4), use_skips=True, embedder=task.embedder,
                                embedder_out_dim=out_dim)
    H, W = config["data.img_h"], config["data.img_w"]
    task.homography_sampler_list = [HomographySample(H // 2 ** s, W // 2 ** s) for s in range(4)]
    task.upsample_list = [nn.Identity()] + [nn.Upsample(size=(H // 2 ** s, W // 2 ** s)) for s in range(1, 4)]
    task.init_data(torch.device("cpu"))
    task.backbone.eval()
    task.decoder.eval()
    return task


def intrinsics(H, W, fov=90):
    """VideoGenerator.compute_camera_intrinsic (np.float is gone from numpy: written out here)."""
    fx = W * 0.5 / np.tan(np.radians(fov) * 0.5)
    return np.array([[fx, 0, W * 0.5], [0, fx, H * 0.5], [0, 0, 1]], np.float32)


def timed(fn, steps):
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def bench(tree, width, height, planes, args):
    from operations import mpi_rendering

    config = load_config(tree, width, height, planes)
    torch.manual_seed(0)
    task = build_task(config, args.num_layers)
    img = torch.rand(1, 3, height, width)
    K = torch.from_numpy(intrinsics(height, width))[None]
    K_inv = torch.inverse(K)
    N_pt = 128
    src_items = {"img": img, "K": K, "K_inv": K_inv, "xyzs": torch.ones((1, 3, N_pt))}
    tgt_items = {"img": img.unsqueeze(1), "K": K.unsqueeze(1), "K_inv": K_inv.unsqueeze(1),
                 "xyzs": torch.ones((1, 1, 3, N_pt)), "G_src_tgt": torch.eye(4)[None, None]}
    G_tgt_src = torch.eye(4)[None]
    G_tgt_src[0, :3, 3] = torch.tensor([-0.05, 0.0, -0.1])

    def predict():
        # VideoGenerator.infer_network
        task.set_data((src_items, tgt_items))
        endpoints = task.network_forward()
        disparity = endpoints["disparity_all_src"]
        mpi = endpoints["mpi_all_src_list"][0]
        xyz = mpi_rendering.get_src_xyz_from_plane_disparity(task.homography_sampler_list[0].meshgrid,
                                                             disparity, K_inv)
        rgb, sigma = mpi[:, :, 0:3], mpi[:, :, 3:]
        _, _, blend_weights, _ = mpi_rendering.render(
            rgb, sigma, xyz, use_alpha=config.get("mpi.use_alpha", False),
            is_bg_depth_inf=config.get("mpi.render_tgt_rgb_depth", False))
        return blend_weights * img.unsqueeze(1) + (1 - blend_weights) * rgb, sigma, disparity

    with torch.no_grad():
        rgb, sigma, disparity = predict()
        render = lambda: task.render_novel_view(rgb, sigma, disparity, G_tgt_src, K_inv, K,
                                                scale_factor=torch.ones(1))
        return timed(predict, args.steps), timed(render, args.steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree")
    parser.add_argument("--size", default="384x256")
    parser.add_argument("--planes", default="32,64")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--num_layers", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    install_shims(args.tree)
    width, height = (int(v) for v in args.size.split("x"))
    result = {"original": "vincentfung13/MINE", "threads": torch.get_num_threads(), "torch": torch.__version__}
    for planes in (int(p) for p in args.planes.split(",")):
        predict_s, render_s = bench(args.tree, width, height, planes, args)
        result[f"predict_s_N{planes}"], result[f"render_s_N{planes}"] = predict_s, render_s
        if not args.json:
            print(f"N={planes:3d}: MPI prediction {predict_s * 1e3:9.1f} ms/image, novel view {render_s * 1e3:8.1f} ms")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
