# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""Orbit video of one object rendered by pixelNeRF from its source view(s) (the release's gen_video).

    python -m inerf.eval.gen_video -n srn_car --split test -P '64 104' -D data/cars -S 1
        [--num_views 40] [--elevation -10] [--scale 1.0] [--radius 0] [--fps 30] [--gpu_id 0]

Loads checkpoints/<name>/pixel_nerf_latest, encodes views -P of object -S of the split, renders
--num_views poses on a circle (DTU: the release's fixed quaternion spline) and writes
visuals/<name>/video<t|v><subset>_v<views>.gif (a .gif as in iNeRF-public) and the source views
as video..._view.jpg. Runs on the GPU --gpu_id when there is one, else on the CPU.
"""

import os
import warnings

import imageio.v2 as imageio
import numpy as np
import torch
import tqdm
from scipy.interpolate import CubicSpline

from inerf.src import util
from inerf.src.data import get_split_dataset
from inerf.src.model import make_model
from inerf.src.render import NeRFRenderer

# IDR's hand-picked DTU camera path: quaternions (w, x, y, z) at spline knots 0, 2, 3, 5, 6.
DTU_KNOTS = np.array([0, 2, 3, 5, 6], dtype=np.float32)
DTU_QUATS = np.array([[0.9698, 0.2121, 0.1203, -0.0039], [0.7020, 0.1578, 0.4525, 0.5268],
                      [0.6766, 0.3176, 0.5179, 0.4161], [0.9085, 0.4020, 0.1139, -0.0025],
                      [0.9698, 0.2121, 0.1203, -0.0039]], dtype=np.float32)


def extra_args(parser):
    """gen_video's own flags."""
    parser.add_argument("--subset", "-S", type=int, default=0, help="Subset in data to use")
    parser.add_argument("--split", type=str, default="train", help="Split of data to use train | val | test")
    parser.add_argument("--source", "-P", type=str, default="64",
                        help="Source view(s) in image, in increasing order. -1 to do random")
    parser.add_argument("--num_views", type=int, default=40, help="Number of video frames (rotated views)")
    parser.add_argument("--elevation", type=float, default=-10.0, help="Elevation angle (negative is above)")
    parser.add_argument("--scale", type=float, default=1.0, help="Video scale relative to input size")
    parser.add_argument("--radius", type=float, default=0.0,
                        help="Distance of camera from origin, default is average of z_far, z_near of dataset (only for non-DTU)")
    parser.add_argument("--fps", type=int, default=30, help="FPS of video")
    return parser


def dtu_render_poses(num_views):
    """(5 * (num_views // 5), 4, 4) poses on a periodic cubic spline through DTU_QUATS at radius 2."""
    n_inter = num_views // 5
    t_out = np.linspace(DTU_KNOTS[0], DTU_KNOTS[-1], n_inter * int(DTU_KNOTS[-1])).astype(np.float32)
    scales = CubicSpline(DTU_KNOTS, np.full(5, 2.0, dtype=np.float32), bc_type="periodic")(t_out)
    quats = CubicSpline(DTU_KNOTS, DTU_QUATS, bc_type="periodic")(t_out)
    quats = torch.from_numpy(quats / np.linalg.norm(quats, 2, 1)[:, None]).float()
    R = util.quat_to_rot(quats)
    poses = torch.eye(4, dtype=torch.float32).repeat(len(R), 1, 1)
    poses[:, :3, :3] = R
    poses[:, :3, 3] = R[:, :, 2] * torch.from_numpy(scales).float()[:, None]
    return poses


def orbit_render_poses(num_views, elevation, radius):
    """(num_views, 4, 4) NeRF orbit poses from -180 to 180 degrees azimuth."""
    angles = np.linspace(-180, 180, num_views + 1)[:-1]
    return torch.stack([util.pose_spherical(angle, elevation, radius) for angle in angles], 0)


def render_frames(render_par, render_rays, ray_batch_size):
    """render_rays (NV, H, W, 8) -> fine rgb frames (NV, H, W, 3), in batches of rays."""
    all_rgb_fine = []
    for rays in tqdm.tqdm(torch.split(render_rays.view(-1, 8), ray_batch_size, dim=0)):
        rgb, _ = render_par(rays[None])
        all_rgb_fine.append(rgb[0])
    return torch.cat(all_rgb_fine).view(*render_rays.shape[:3], 3)


def main(argv=None):
    """Renders the video; returns its path."""
    args, conf = util.args.parse_args(extra_args, argv=argv)
    args.resume = True
    device = util.get_cuda(args.gpu_id[0])

    dset = get_split_dataset(args.dataset_format, args.datadir, want_split=args.split, training=False)
    if not 0 <= args.subset < len(dset):
        raise IndexError(f"--subset {args.subset}: the {args.split} split of {args.datadir} has {len(dset)} objects")
    data = dset[args.subset]
    print("Data instance loaded:", data["path"])
    images = data["images"]  # (NV, 3, H, W)
    poses = data["poses"]
    focal = data["focal"]
    if isinstance(focal, float):
        focal = torch.tensor(focal, dtype=torch.float32)
    focal = focal[None]
    c = data.get("c")
    if c is not None:
        c = c.to(device=device).unsqueeze(0)
    NV, _, H, W = images.shape

    if args.scale != 1.0:
        Ht, Wt = int(H * args.scale), int(W * args.scale)
        if abs(Ht / args.scale - H) > 1e-10 or abs(Wt / args.scale - W) > 1e-10:
            warnings.warn(f"Inexact scaling, please check {args.scale} times ({H}, {W}) is integral")
        H, W = Ht, Wt

    net = make_model(conf["model"]).to(device=device)
    net.load_weights(args)
    renderer = NeRFRenderer.from_conf(conf["renderer"], lindisp=dset.lindisp,
                                      eval_batch_size=args.ray_batch_size).to(device=device)
    render_par = renderer.bind_parallel(net, args.gpu_id, simple_output=True).eval()

    z_near, z_far = dset.z_near, dset.z_far
    print("Generating rays")
    if getattr(dset, "sub_format", None) == "dtu":
        print("Using DTU camera trajectory")
        render_poses = dtu_render_poses(args.num_views)
    else:
        print("Using default (360 loop) camera trajectory")
        radius = (z_near + z_far) * 0.5 if args.radius == 0.0 else args.radius
        render_poses = orbit_render_poses(args.num_views, args.elevation, radius)
    render_rays = util.gen_rays(render_poses, W, H, focal * args.scale, z_near, z_far,
                                c=c * args.scale if c is not None else None).to(device=device)
    focal = focal.to(device=device)

    source = torch.tensor(list(map(int, args.source.split())), dtype=torch.long)
    random_source = len(source) == 1 and source[0] == -1
    if (source >= NV).any():
        raise IndexError(f"--source {args.source}: object {data['path']} has only {NV} views")
    if renderer.n_coarse < 64:
        # as released: at least 64 coarse and then 128 fine samples for the video
        renderer.n_coarse = 64
        renderer.n_fine = 128

    with torch.no_grad():
        print("Encoding source view(s)")
        src_view = torch.randint(0, NV, (1,)) if random_source else source
        net.encode(images[src_view].unsqueeze(0).to(device=device),
                   poses[src_view].unsqueeze(0).to(device=device), focal, c=c)
        print("Rendering", render_rays.shape[0] * H * W, "rays")
        frames = render_frames(render_par, render_rays, args.ray_batch_size)

    print("Writing video")
    vid_name = "{:04}".format(args.subset)
    vid_name = {"test": "t", "val": "v"}.get(args.split, "") + vid_name
    vid_name += "_v" + "_".join("{:03}".format(x) for x in source.tolist())
    vid_path = os.path.join(args.visual_path, args.name, "video" + vid_name + ".gif")
    viewimg_path = os.path.join(args.visual_path, args.name, "video" + vid_name + "_view.jpg")
    imageio.mimwrite(vid_path, (frames.cpu().numpy() * 255).astype(np.uint8), duration=1000.0 / args.fps, loop=0)
    img_np = (data["images"][src_view].permute(0, 2, 3, 1) * 0.5 + 0.5).numpy()
    imageio.imwrite(viewimg_path, np.hstack(tuple((img_np * 255).astype(np.uint8))))
    print("Wrote to", vid_path, "view:", viewimg_path)
    return vid_path


if __name__ == "__main__":
    main()
