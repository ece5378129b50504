# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""Zoom-in and swing videos (RGB and disparity mp4) rendered from the MPI that MINE predicts for one image.

    python -m mine.visualizations.image_to_video --checkpoint_path RUN/checkpoint_latest.pth \
        --data_path photo.jpg --output_dir out [--gpus 0] [--extra_config '{"mpi.num_bins_coarse": 64}'] \
        [--num_frames 90]

`params.yaml` next to the checkpoint gives the model and the dataset (`data.name`), which picks the
camera trajectories. Writes `<image name>_{zoom-in,swing}_{rgb,disp}.mp4` into output_dir.
"""

import argparse
import json
import logging
import math
import os
import sys

import cv2
import imageio
import numpy as np
import torch
import yaml
from tqdm import tqdm

from common import device as devices
from mine.synthesis_task import SynthesisTask
from mine.utils import disparity_normalization_vis

# The original's trajectories (kitti_raw; realestate10k, nyu, ibims): 90 frames at 30 fps, one
# translation range per trajectory. Its other datasets raised "Unsupported dataset"; the llff,
# dtu and flowers ranges are this port's (llff and dtu: RealEstate10K's, whose disparity range
# they share; flowers: the light-field aperture of cam_params.txt).
TRAJECTORIES = {
    "kitti_raw": {"x_shift_range": [0.0, -0.8], "y_shift_range": [0.0, -0.0], "z_shift_range": [-1.5, -1.0]},
    "realestate10k": {"x_shift_range": [0.0, -0.16], "y_shift_range": [0.0, -0.0], "z_shift_range": [-0.30, -0.2]},
    "flowers": {"x_shift_range": [0.0, -0.01], "y_shift_range": [0.0, -0.0], "z_shift_range": [-0.03, -0.02]},
}
for _name in ("nyu", "ibims", "llff", "dtu"):
    TRAJECTORIES[_name] = TRAJECTORIES["realestate10k"]


def path_planning(num_frames, x, y, z, path_type="", s=0.3):
    """Camera translations of a trajectory towards (x, y, z): -> xs, ys, zs, each [num_frames] (float64).

    straight-line: from 0 to (x, y, z); double-straight-line: from s*(x, y, z) to -(x, y, z) in
    num_frames // 2 steps and back; circle: an ellipse in x/y with z swinging around -s*z.
    """
    p = np.array([x, y, z], dtype=np.float64)
    if path_type == "straight-line":
        # The original's quadratic spline through 0, p/2 and p is this straight line.
        spline = np.linspace(0, 1, num_frames)[:, None] * p
    elif path_type == "double-straight-line":
        t = np.linspace(0, 1, int(num_frames * 0.5))[:, None]
        spline = s * p + t * (-p - s * p)
        spline = np.concatenate([spline, spline[::-1]])
    elif path_type == "circle":
        # The original's float arange: its length can exceed num_frames by one through rounding.
        phase = np.arange(-2.0, 2.0, 4.0 / num_frames) * np.pi
        spline = np.stack([np.cos(phase) * x, np.sin(phase) * y, np.cos(phase / 2.0) * z - s * z], -1)
    else:
        raise ValueError(f"unknown path_type {path_type!r}: straight-line, double-straight-line or circle")
    return spline[:, 0], spline[:, 1], spline[:, 2]


def img_tensor_to_np(img_tensor):
    """1x3xHxW image or 1x1xHxW disparity in [0, 1] -> HxWx3 uint8 (disparity through the HOT colour map)."""
    B, C = img_tensor.shape[:2]
    if B != 1 or C not in (1, 3):
        raise ValueError(f"expected a 1x1xHxW or 1x3xHxW tensor, got {tuple(img_tensor.shape)}")
    img = img_tensor[0].permute(1, 2, 0).detach().cpu().numpy()
    img = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    if C == 1:
        img = cv2.cvtColor(cv2.applyColorMap(img, cv2.COLORMAP_HOT), cv2.COLOR_BGR2RGB)
    return img


def write_video(path, frames, fps):
    """Writes HxWx3 uint8 frames to an H.264 mp4 (imageio-ffmpeg)."""
    # macro_block_size 1: keeps sizes that are not multiples of 16 as they are.
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)


class VideoGenerator:
    """Predicts the MPI of one image and renders it along the dataset's trajectories."""

    def __init__(self, synthesis_task, config, logger, img, output_dir, num_frames=90):
        self.num_frames = num_frames
        self.synthesis_task = synthesis_task
        self.config = config
        self.logger = logger
        self.synthesis_task.backbone.eval()
        self.synthesis_task.decoder.eval()
        device = synthesis_task.device
        if isinstance(img, np.ndarray):
            img = cv2.resize(img, (config["data.img_w"], config["data.img_h"]), interpolation=cv2.INTER_LINEAR)
            img = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).to(device, torch.float32) / 255.0
        self.img = img.to(device)
        self.output_dir = output_dir
        self.tgts_poses, self.traj_config = self.traj_generation()
        self.infer_network()

    @torch.no_grad()
    def infer_network(self):
        """MPI of the image (source RGB blended in) for a 90-degree horizontal field of view."""
        _, _, H, W = self.img.shape
        K = torch.from_numpy(self.compute_camera_intrinsic(H, W).astype(np.float32)).unsqueeze(0)
        self.K = K.to(self.img.device)
        self.K_inv = torch.inverse(self.K)
        self.mpi_all_rgb_src, self.mpi_all_sigma_src, self.disparity_all_src = \
            self.synthesis_task.predict_src_mpi(self.img, self.K_inv)

    def traj_generation(self):
        """Target poses (4x4 G_tgt_src) of every trajectory and the trajectory settings of data.name."""
        name = self.config["data.name"]
        if name not in TRAJECTORIES:
            raise ValueError(f"Unsupported dataset {name!r} (data.name): one of {', '.join(sorted(TRAJECTORIES))}")
        traj_config = {"fps": 30, "num_frames": self.num_frames, "traj_types": ["double-straight-line", "circle"],
                       "name": ["zoom-in", "swing"], **TRAJECTORIES[name]}
        tgts_poses = []
        for i, traj_type in enumerate(traj_config["traj_types"]):
            xs, ys, zs = path_planning(traj_config["num_frames"], traj_config["x_shift_range"][i],
                                       traj_config["y_shift_range"][i], traj_config["z_shift_range"][i],
                                       path_type=traj_type)
            poses = np.tile(np.eye(4), (len(xs), 1, 1))
            poses[:, :3, 3] = np.stack([xs, ys, zs], -1)
            tgts_poses.append(poses)
        return tgts_poses, traj_config

    @staticmethod
    def compute_camera_intrinsic(H, W, fov=90):
        """K [3, 3] (float64) of a pinhole camera with horizontal field of view `fov` degrees, centred."""
        fx = W * 0.5 / math.tan(math.radians(fov) * 0.5)
        return np.array([[fx, 0, W * 0.5], [0, fx, H * 0.5], [0, 0, 1]], dtype=np.float64)

    @torch.no_grad()
    def render_video(self, output_name):
        """Writes <output_name>_<trajectory>_{rgb,disp}.mp4 for every trajectory; returns their paths."""
        paths = []
        task, device = self.synthesis_task, self.img.device
        for name, poses in zip(self.traj_config["name"], self.tgts_poses):
            self.logger.info("Processing trajectory %s ...", name)
            rgb_frames, disp_frames = [], []
            for pose in tqdm(poses, desc=name):
                G_tgt_src = torch.from_numpy(pose.astype(np.float32)).unsqueeze(0).to(device)
                results = task.render_novel_view(self.mpi_all_rgb_src, self.mpi_all_sigma_src,
                                                 self.disparity_all_src, G_tgt_src, self.K_inv, self.K, scale=0,
                                                 scale_factor=torch.tensor([1.0], device=device))
                rgb_frames.append(img_tensor_to_np(results["tgt_imgs_syn"]))
                disp_frames.append(img_tensor_to_np(disparity_normalization_vis(results["tgt_disparity_syn"])))
            for kind, frames in (("rgb", rgb_frames), ("disp", disp_frames)):
                path = os.path.join(self.output_dir, f"{output_name}_{name}_{kind}.mp4")
                write_video(path, frames, self.traj_config["fps"])
                paths.append(path)
        return paths


def load_params(checkpoint_path, extra_config="{}"):
    """params.yaml beside the checkpoint, updated with the extra-config JSON (its keys must exist)."""
    if not os.path.isfile(checkpoint_path):
        raise FileNotFoundError(f"checkpoint not found: {checkpoint_path}")
    config_path = os.path.join(os.path.dirname(os.path.abspath(checkpoint_path)), "params.yaml")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} not found: the training run's params.yaml must sit beside the checkpoint")
    with open(config_path) as f:
        config = yaml.safe_load(f)
    extra = json.loads(extra_config)
    unknown = [k for k in extra if k not in config]
    if unknown:
        raise KeyError(f"--extra_config: unknown config keys {unknown} (not in {config_path})")
    config.update(extra)
    return config


def pick_device(gpus):
    """cuda:<first of --gpus> when given and available, else the CPU."""
    return devices.pick_device("cpu" if gpus is None else f"cuda:{int(str(gpus).split(',')[0])}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="MINE: videos from a single image")
    parser.add_argument("--checkpoint_path", type=str, required=True)
    parser.add_argument("--data_path", type=str, required=True, help="the input image")
    parser.add_argument("--output_dir", type=str, required=True)
    parser.add_argument("--gpus", type=str, default=None, help="CUDA device ids (first one used); CPU without")
    parser.add_argument("--extra_config", type=str, default="{}", required=False)
    parser.add_argument("--num_frames", type=int, default=90, help="frames per trajectory (the original: 90)")
    args = parser.parse_args(argv)

    config = load_params(args.checkpoint_path, args.extra_config)
    img_np = cv2.imread(args.data_path, cv2.IMREAD_COLOR)
    if img_np is None:
        raise FileNotFoundError(f"cannot read the input image {args.data_path}")
    img_np = cv2.cvtColor(img_np, cv2.COLOR_BGR2RGB)
    os.makedirs(args.output_dir, exist_ok=True)

    logger = logging.getLogger("mine_inference")
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(filename)s] %(message)s"))
    logger.handlers = [handler, logging.FileHandler(os.path.join(args.output_dir, "inference.log"))]
    logger.handlers[1].setFormatter(handler.formatter)
    logger.propagate = False

    config.update({"global_rank": 0, "current_epoch": 0, "local_workspace": args.output_dir, "tb_writer": None,
                   "training.pretrained_checkpoint_path": args.checkpoint_path,
                   "data.val_set_path": args.data_path, "data.per_gpu_batch_size": 1,
                   # The original's placeholder: no disparity list, so the planes are drawn per bin.
                   "mpi.disparity_list": np.zeros((1), dtype=np.float32),
                   # The checkpoint holds the encoder: no ImageNet weights to look for.
                   "model.imagenet_pretrained": False})
    task = SynthesisTask(config=config, logger=logger, is_val=True, device=pick_device(args.gpus))
    generator = VideoGenerator(task, config, logger, img_np, args.output_dir, args.num_frames)
    paths = generator.render_video(os.path.splitext(os.path.basename(args.data_path))[0])
    for path in paths:
        logger.info("wrote %s", path)
    return paths


if __name__ == "__main__":
    main()
