"""Speed of MINE: MPI prediction and novel-view rendering time per image, N = 32 and 64 planes.

    python bench/mine.py [--size 384x256] [--planes 32,64] [--steps 3] [--num_layers 50] [--device cpu]
    python bench/mine.py ... --json        # last line: {"predict_s_N32": s, "render_s_N32": s, ...}
    python bench/mine.py --memory_table   # predicted peak training memory of every paper config (README)

The paper's model (ResNet-50 encoder, RealEstate10K config, random weights: speed does not depend
on them). MPI prediction is SynthesisTask.predict_src_mpi (encoder, decoder over the N planes,
source-RGB blending) on one image; rendering is one render_novel_view of that MPI at a new pose
(homography warp of the N planes and volume rendering). Prints the device and threads with the figures.
"""

import argparse
import json
import os
import sys

# This file shares its name with the package: keep bench/ off the import path so that `import mine`
# finds the package; the repository root goes first instead.
_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_BENCH_DIR)] + [p for p in sys.path if os.path.abspath(p or ".") != _BENCH_DIR]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from common import device as device_utils  # noqa: E402
from common import memory  # noqa: E402
from mine import synthesis_task  # noqa: E402
from mine.synthesis_task import SynthesisTask  # noqa: E402
from mine.visualizations.image_to_video import VideoGenerator  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(_BENCH_DIR), "mine", "configs")


def bench(width, height, planes, args, device):
    """(prediction s, rendering s) per image for an N-plane model at width x height."""
    with open(os.path.join(CONFIGS, "params_default.yaml")) as f:
        config = yaml.safe_load(f)
    with open(os.path.join(CONFIGS, "params_realestate.yaml")) as f:
        config.update(yaml.safe_load(f))
    config.update({"data.img_w": width, "data.img_h": height, "mpi.num_bins_coarse": planes, "global_rank": 0,
                   "model.num_layers": args.num_layers, "model.imagenet_pretrained": False})
    task = SynthesisTask(config, None, is_val=True, device=device)
    task.backbone.eval()
    task.decoder.eval()
    img = torch.rand(1, 3, height, width, device=device)
    K = torch.from_numpy(VideoGenerator.compute_camera_intrinsic(height, width).astype(np.float32))[None].to(device)
    K_inv = torch.inverse(K)
    G_tgt_src = torch.eye(4, device=device)[None]
    G_tgt_src[0, :3, 3] = torch.tensor([-0.05, 0.0, -0.1])
    with torch.no_grad():
        predict = lambda: task.predict_src_mpi(img, K_inv)
        rgb, sigma, disparity = predict()
        render = lambda: task.render_novel_view(rgb, sigma, disparity, G_tgt_src, K_inv, K,
                                                scale_factor=torch.ones(1, device=device))
        return device_utils.timed(predict, args.steps, device), device_utils.timed(render, args.steps, device)


def load_config(dataset_yaml, **overrides):
    """params_default.yaml <- mine/configs/<dataset_yaml> <- overrides, with the comma strings parsed."""
    from mine import train

    config = train.load_config(os.path.join(CONFIGS, dataset_yaml))
    config.update({"model.imagenet_pretrained": False, "global_rank": 0, **overrides})
    return train.preprocess_config(config)


def conv_flops_per_pixel(config):
    """2 x multiply-adds of every convolution (encoder + decoder over the N planes) per source pixel.

    Counted from each layer's sizes (in channels / groups x kernel area x output elements) in one eval-mode
    MPI prediction of one image on the meta device. The warps and compositing (no convolutions) are left out.
    """
    H, W = config["data.img_h"], config["data.img_w"]
    with torch.device("meta"):
        task = SynthesisTask({**config, "training.pretrained_checkpoint_path": None, "training.compile": False,
                              "training.bf16": False},
                             synthesis_task._PROBE_LOGGER, is_val=True, device="meta")
    macs = []

    def count(conv, inputs, output):
        macs.append(output.numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1])

    for net in (task.backbone, task.decoder):
        net.eval()
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.register_forward_hook(count)
    task.mpi_predictor(torch.zeros(1, 3, H, W, device="meta"),
                       torch.zeros(1, config["mpi.num_bins_coarse"], device="meta"))
    return 2.0 * sum(macs) / (H * W)


def toy_batch(B, H, W, num_points, seed):
    """A collated batch made on the CPU from `seed`: noise images, the target a shifted copy, 90-degree camera,
    sparse points 1..10 units in front of both cameras, the target 0.05 to the side."""
    generator = torch.Generator().manual_seed(seed)
    src = synthesis_task.probe_batch(B, H, W, num_points, "cpu")
    src[0]["img"] = torch.rand(B, 3, H, W, generator=generator)
    src[1]["img"] = torch.roll(src[0]["img"], shifts=2, dims=3).unsqueeze(1)
    z = 1 + 9 * torch.rand(B, 1, num_points, generator=generator)
    xy = (torch.rand(B, 2, num_points, generator=generator) * 2 - 1) * z * 0.5
    src[0]["xyzs"] = torch.cat((xy, z), dim=1)
    src[1]["xyzs"] = (src[0]["xyzs"] - torch.tensor([0.05, 0.0, 0.0])[:, None]).unsqueeze(1)
    return src


def gpu_check_case(device, precision, *, paper=True, compiled=False, batch_rays=None, seed=0):
    """bench.gpu_case.Case of SynthesisTask.train_step at params_realestate.yaml (paper: ResNet-50, 384x256,
    32 planes, batch 4) or the demo config (ResNet-18, 256x128, 8 planes, batch 2), on `device`.

    "Rays" are target pixels: train_rays = batch x H x W (batch_rays overrides the batch, rounded up to whole
    images, 2 at least), render_rays = the H x W pixels of one novel view (MPI prediction of one image and
    its warp). Weights are initialised on the CPU from the seed and moved, the batch is made on the CPU and
    moved, and the planes are fixed (mpi.fix_disparity), so the step is deterministic.
    """
    from bench import gpu_case
    from mine.scripts import demo

    gpu_case.check_precision(precision)
    device = torch.device(device)
    overrides = {} if paper else dict(demo.DEMO_CONFIG)
    config = load_config("params_realestate.yaml" if paper else "params_llff.yaml",
                         **{**overrides, "mpi.fix_disparity": True, "training.bf16": precision == "bf16",
                            "training.compile": compiled, "device": str(device)})
    H, W = config["data.img_h"], config["data.img_w"]
    if batch_rays is not None:
        # Whole images, two at least: BatchNorm of the 1/128 bottleneck needs two values per channel.
        config["data.per_gpu_batch_size"] = max(2, -(-batch_rays // (H * W)))
    gpu_case.set_tf32(device, precision)
    torch.manual_seed(seed)
    task = SynthesisTask(config, None, device=device)
    batch = toy_batch(config["data.per_gpu_batch_size"], H, W, config["data.visible_point_count"], seed)
    batch = tuple({k: v.to(device) for k, v in items.items()} for items in batch)
    params = [*task.backbone.parameters(), *task.decoder.parameters()]

    def train_step():
        losses = task.train_step(batch)
        grads = [p.grad for p in params if p.grad is not None]
        return {"loss": losses["loss"], "psnr": losses["psnr_tgt"],
                "grad_norm": torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))}

    src, tgt = batch
    G_tgt_src = torch.linalg.inv(tgt["G_src_tgt"][:1, 0])

    def render():
        task.backbone.eval()
        task.decoder.eval()
        with torch.no_grad():
            rgb, sigma, disparity = task.predict_src_mpi(src["img"][:1], src["K_inv"][:1])
            view = task.render_novel_view(rgb, sigma, disparity, G_tgt_src, src["K_inv"][:1], tgt["K"][:1, 0],
                                          scale_factor=torch.ones(1, device=device))
        task.backbone.train()
        task.decoder.train()
        return view["tgt_imgs_syn"]

    forward = conv_flops_per_pixel(config)
    return gpu_case.Case(
        name=f"mine SynthesisTask.train_step {'params_realestate.yaml' if paper else 'demo'}", train_step=train_step,
        render=render, train_rays=config["data.per_gpu_batch_size"] * H * W, render_rays=H * W,
        flops_per_ray_train=3 * forward, flops_per_ray_render=forward)


# (dataset yaml, overrides, what): the paper configs of the release; KITTI's released models are 768x256.
PAPER_CONFIGS = (
    ("params_llff.yaml", {}, "llff"),
    ("params_realestate.yaml", {}, "realestate10k (released models)"),
    ("params_realestate.yaml", {"mpi.num_bins_coarse": 64}, "realestate10k, N=64 (released models)"),
    ("params_kitti_raw.yaml", {}, "kitti_raw (config)"),
    ("params_kitti_raw.yaml", {"data.img_w": 768, "data.img_h": 256}, "kitti_raw 768x256 (released models)"),
    ("params_flowers.yaml", {}, "flowers (released models)"),
)


def memory_table(budget_gib=24.0):
    """Markdown rows: predicted peak training memory per paper config at its batch, and the batch that fits."""
    rows = ["| config | size, planes | batch | predicted peak | largest batch in 24 GB (predicted) |",
            "|---|---|---|---|---|"]
    for yaml_file, overrides, what in PAPER_CONFIGS:
        config = load_config(yaml_file, **overrides)
        with torch.device("meta"):
            task = SynthesisTask(config, synthesis_task._PROBE_LOGGER, is_val=True, device="meta")
        params = [*task.backbone.parameters(), *task.decoder.parameters()]
        per_image = synthesis_task.activation_bytes_per_image(config)
        batch = config["data.per_gpu_batch_size"]
        peak = memory.predicted_peak_bytes(params, per_image, batch)
        fits = int((budget_gib * memory.GIB - memory.state_bytes(params)) // per_image)
        rows.append(f"| {what} | {config['data.img_w']}x{config['data.img_h']}, N={config['mpi.num_bins_coarse']} | "
                    f"{batch} | {peak / memory.GIB:.1f} GiB | {fits} |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="384x256", help="WIDTHxHEIGHT, multiples of 128")
    parser.add_argument("--planes", default="32,64")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--num_layers", type=int, default=50)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--json", action="store_true", help="last line: the seconds per image as JSON")
    parser.add_argument("--memory_table", action="store_true", help="print the README's predicted-memory table")
    args = parser.parse_args()
    if args.memory_table:
        print(memory_table())
        return
    width, height = (int(v) for v in args.size.split("x"))
    device = torch.device(args.device) if args.device else device_utils.pick_device()
    print(f"device {device}, float32, {torch.get_num_threads()} threads, ResNet-{args.num_layers}, {width}x{height}")
    result = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__}
    for planes in (int(p) for p in args.planes.split(",")):
        predict_s, render_s = bench(width, height, planes, args, device)
        result[f"predict_s_N{planes}"], result[f"render_s_N{planes}"] = predict_s, render_s
        print(f"N={planes:3d}: MPI prediction {predict_s * 1e3:9.1f} ms/image, "
              f"novel view {render_s * 1e3:8.1f} ms/image, both {(predict_s + render_s) * 1e3:9.1f} ms")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
