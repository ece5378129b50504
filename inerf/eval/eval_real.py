# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF on real car photos: an orbit video of each <input>/*_normalize.png (from scripts/preproc.py).

    python -m inerf.eval.eval_real -n srn_car [-I inerf/input] [-O output] [--size 128] [--out_size 128]
        [--focal 131.25] [--radius 1.3] [--z_near 0.8] [--z_far 1.8] [-e 0] [--num_views 24] [--gif] [--no_vid]

Each image is encoded with the camera at (0, 0, radius) looking at the origin; --num_views poses
on a circle (in Blender axes) are rendered to <output>/<name>_frames/*.png and a video.
"""

import os

import imageio.v2 as imageio
import numpy as np
import torch
import tqdm
from PIL import Image

from inerf.src import util
from inerf.src.model import make_model
from inerf.src.render import NeRFRenderer

ROOT_DIR = util.args.PROJECT_ROOT


def extra_args(parser):
    """eval_real's flags."""
    parser.add_argument("--input", "-I", type=str, default=os.path.join(ROOT_DIR, "input"), help="Image directory")
    parser.add_argument("--output", "-O", type=str, default=os.path.join(ROOT_DIR, "output"), help="Output directory")
    parser.add_argument("--size", type=int, default=128, help="Input image maxdim")
    parser.add_argument("--out_size", type=str, default="128", help="Output image size, either 1 or 2 number (w h)")
    parser.add_argument("--focal", type=float, default=131.25, help="Focal length")
    parser.add_argument("--radius", type=float, default=1.3, help="Camera distance")
    parser.add_argument("--z_near", type=float, default=0.8)
    parser.add_argument("--z_far", type=float, default=1.8)
    parser.add_argument("--elevation", "-e", type=float, default=0.0, help="Elevation angle (negative is above)")
    parser.add_argument("--num_views", type=int, default=24, help="Number of video frames (rotated views)")
    parser.add_argument("--fps", type=int, default=15, help="FPS of video")
    parser.add_argument("--gif", action="store_true", help="Store gif instead of mp4")
    parser.add_argument("--no_vid", action="store_true", help="Do not store video (only image frames will be written)")
    return parser


def main(argv=None):
    """Renders every *_normalize.png of --input; returns the written video paths."""
    args, conf = util.args.parse_args(extra_args, default_expname="srn_car", default_data_format="srn", argv=argv)
    args.resume = True
    if not os.path.isdir(args.input):
        raise FileNotFoundError(f"--input {args.input}: no such directory of *_normalize.png images")
    inputs_all = sorted(os.listdir(args.input))
    inputs = [os.path.join(args.input, x) for x in inputs_all if x.endswith("_normalize.png")]
    if not inputs:
        raise FileNotFoundError(f"{args.input}: no *_normalize.png image"
                                + (" (run scripts/preproc.py on the photos first)" if inputs_all else ""))

    device = util.get_cuda(args.gpu_id[0])
    net = make_model(conf["model"]).to(device=device).load_weights(args)
    renderer = NeRFRenderer.from_conf(conf["renderer"], eval_batch_size=args.ray_batch_size).to(device=device)
    render_par = renderer.bind_parallel(net, args.gpu_id, simple_output=True).eval()
    focal = torch.tensor(args.focal, dtype=torch.float32, device=device)
    sz = list(map(int, args.out_size.split()))
    if len(sz) == 1:
        H = W = sz[0]
    else:
        assert len(sz) == 2, "--out_size: one or two numbers (w h)"
        W, H = sz

    print("Generating rays")
    coord_from_blender = util.coord_from_blender()
    render_poses = torch.stack([coord_from_blender @ util.pose_spherical(angle, args.elevation, args.radius)
                                for angle in np.linspace(-180, 180, args.num_views + 1)[:-1]], 0)
    render_rays = util.gen_rays(render_poses, W, H, focal.cpu(), args.z_near, args.z_far).to(device=device)
    os.makedirs(args.output, exist_ok=True)
    cam_pose = torch.eye(4, device=device)
    cam_pose[2, -1] = args.radius
    image_to_tensor = util.get_image_to_tensor_balanced(args.size)
    vid_paths = []
    with torch.no_grad():
        for i, image_path in enumerate(inputs):
            print("IMAGE", i + 1, "of", len(inputs), "@", image_path)
            image = image_to_tensor(Image.open(image_path).convert("RGB")).to(device=device)
            net.encode(image.unsqueeze(0), cam_pose.unsqueeze(0), focal)
            print("Rendering", args.num_views * H * W, "rays")
            rgb_fine = torch.cat([render_par(rays[None])[0][0]
                                  for rays in tqdm.tqdm(torch.split(render_rays.view(-1, 8), 80000, dim=0))])
            frames = (rgb_fine.view(args.num_views, H, W, 3).cpu().numpy() * 255).astype(np.uint8)
            im_name = os.path.basename(os.path.splitext(image_path)[0])
            frames_dir_name = os.path.join(args.output, im_name + "_frames")
            os.makedirs(frames_dir_name, exist_ok=True)
            for k in range(args.num_views):
                imageio.imwrite(os.path.join(frames_dir_name, "{:04}.png".format(k)), frames[k])
            if not args.no_vid:
                if args.gif:
                    vid_path = os.path.join(args.output, im_name + "_vid.gif")
                    imageio.mimwrite(vid_path, frames, duration=1000.0 / args.fps, loop=0)
                else:
                    vid_path = os.path.join(args.output, im_name + "_vid.mp4")
                    imageio.mimwrite(vid_path, frames, fps=args.fps, quality=8, macro_block_size=1)
                print("Wrote to", vid_path)
                vid_paths.append(vid_path)
    return vid_paths


if __name__ == "__main__":
    main()
