"""Speed of MINE: MPI prediction and novel-view rendering time per image, N = 32 and 64 planes.

    python bench/mine.py [--size 384x256] [--planes 32,64] [--steps 3] [--num_layers 50] [--device cpu]

The paper's model (ResNet-50 encoder, RealEstate10K config, random weights: speed does not depend
on them). MPI prediction is SynthesisTask.predict_src_mpi (encoder, decoder over the N planes,
source-RGB blending) on one image; rendering is one render_novel_view of that MPI at a new pose
(homography warp of the N planes and volume rendering). Prints the device and threads with the figures.
"""

import argparse
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="384x256", help="WIDTHxHEIGHT, multiples of 128")
    parser.add_argument("--planes", default="32,64")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--num_layers", type=int, default=50)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    device = torch.device(args.device) if args.device else device_utils.pick_device()
    print(f"device {device}, float32, {torch.get_num_threads()} threads, ResNet-{args.num_layers}, {width}x{height}")
    for planes in (int(p) for p in args.planes.split(",")):
        predict_s, render_s = bench(width, height, planes, args, device)
        print(f"N={planes:3d}: MPI prediction {predict_s * 1e3:9.1f} ms/image, "
              f"novel view {render_s * 1e3:8.1f} ms/image, both {(predict_s + render_s) * 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
