# Derived from yenchenlin/iNeRF-public (no licence file in that repository: all rights reserved by default; see THIRD_PARTY_NOTICES.md).
# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""iNeRF as released: pose of a target image by gradient descent through pixelNeRF (iNeRF-public).

    python -m inerf.eval.pose_estimation -n srn_car -I inerf/input/1.png -T inerf/input/2.png [--lrate 1e-3]
        [--sampling random|center|patch] [--focal 131.25] [--radius 1.3] [--gpu_id 0]

The source image -I is encoded with the camera at (0, 0, radius) looking at the origin; the pose
starts there too. Each step re-encodes the source, renders n_rays = 1024 pixels of the target -T
(drawn with replacement; `center`: from the central 50% box; `patch`: the fixed central 25%
box, 32x32 at 128 px), and Adam updates all 16 entries of the raw 4x4 camera-to-world matrix
with an MSE loss (the rotation is not kept orthonormal). As released: 101 steps whatever
--n_steps says (pass --use_n_steps to honour it); the pose and a fine rgb patch are logged every
20 steps (--log_every); frames of the logged poses go to <output>/<input name>_frames/, overlays
(and pred/gt patches for `patch`) to the working directory, and a video to <output>.
The notebook's settings: --sampling center --lrate 1e-2 --log_every 10.
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
N_STEPS_RELEASED = 100 + 1
N_RAYS = 1024


def extra_args(parser):
    """pose_estimation's flags (the release's, plus --sampling and --use_n_steps)."""
    parser.add_argument("--input", "-I", type=str, help="Input image to condition on.")
    parser.add_argument("--target", "-T", type=str, help="Target image to estimate the pose.")
    parser.add_argument("--output", "-O", type=str, default=os.path.join(ROOT_DIR, "output"), help="Output directory")
    parser.add_argument("--size", type=int, default=128, help="Input image maxdim")
    parser.add_argument("--out_size", type=str, default="128", help="Output image size, either 1 or 2 number (w h)")
    parser.add_argument("--focal", type=float, default=131.25, help="Focal length")
    parser.add_argument("--radius", type=float, default=1.3, help="Camera distance")
    parser.add_argument("--z_near", type=float, default=0.8)
    parser.add_argument("--z_far", type=float, default=1.8)
    parser.add_argument("--elevation", "-e", type=float, default=0.0, help="Elevation angle (negative is above)")
    parser.add_argument("--num_views", type=int, default=1, help="Number of video frames (rotated views)")
    parser.add_argument("--fps", type=int, default=15, help="FPS of video")
    parser.add_argument("--gif", action="store_true", help="Store gif instead of mp4")
    parser.add_argument("--no_vid", action="store_true", help="Do not store video (only image frames will be written)")
    parser.add_argument("--lrate", type=float, default=1e-3)
    parser.add_argument("--n_steps", type=int, default=500,
                        help="Number of steps for pose optimization (ignored as released; see --use_n_steps).")
    parser.add_argument("--use_n_steps", action="store_true",
                        help="Fix: run --n_steps steps instead of the released fixed 101.")
    parser.add_argument("--log_every", type=int, default=20,
                        help="Steps between logged poses/frames (the script's 20; the notebook's 10).")
    parser.add_argument("--sampling", type=str, default="random", choices=("random", "center", "patch"),
                        help="Pixel sampling (the script's hard-coded 'random'; the notebook used 'center').")
    return parser


def box_indices(H, W, frac, device="cpu"):
    """Flat indices of the central box covering frac of each side (a contiguous block of rows)."""
    h_low, h_high = int(0.5 * (1 - frac) * H), int(0.5 * (1 + frac) * H)
    w_low, w_high = int(0.5 * (1 - frac) * W), int(0.5 * (1 + frac) * W)
    rows = torch.arange(h_low, h_high, device=device)[:, None]
    return (rows * W + torch.arange(w_low, w_high, device=device)).reshape(-1)


def sample_pixels(sampling, H, W, n_rays=N_RAYS, device="cpu"):
    """Flat pixel indices on device: random (n_rays, with replacement), center (n_rays in the 50%
    box), patch (all of the 25% box). Drawn by the default generator of device."""
    if sampling == "random":
        return torch.randint(0, H * W, (n_rays,), device=device)
    if sampling == "center":
        # The box's indices from its bounds: torch.where on the mask would wait for the device.
        idxs_masked = box_indices(H, W, 0.5, device)
        return idxs_masked[torch.randint(0, idxs_masked.shape[0], (n_rays,), device=device)]
    if sampling == "patch":
        return box_indices(H, W, 0.25, device)
    raise ValueError(f"unknown sampling {sampling!r} (random | center | patch)")


def load_rgb(path, size):
    """PIL RGB image with its shorter side resized to size."""
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"image {path!r} not found")
    image = Image.open(path).convert("RGB")
    return util.resize_shorter_side(image, size)


def create_image(patch):
    """A 32x32 patch (float [0, 1]) pasted at the centre of a black 128x128 uint8 image."""
    image = np.zeros((128, 128, 3))
    image[48:80, 48:80, :] = patch
    return (image * 255.0).astype(np.uint8)


def pose_step(render_par, net, optimizer, cam_pose, input_image, input_pose, target_flat, idxs_sampled,
              focal, W, H, z_near, z_far):
    """One released step: re-encode the source, render the pixels idxs_sampled at cam_pose (1, 4, 4),
    MSE against target_flat (H*W, 3), backward, Adam.

    Returns (rgb (1, n, 3), loss [], pose (4, 4) before the update), device tensors.
    """
    net.encode(input_image.unsqueeze(0), input_pose.unsqueeze(0), focal)
    render_rays = util.gen_rays(cam_pose, W, H, focal, z_near, z_far).view(-1, 8)
    rgb, _ = render_par(render_rays[idxs_sampled][None])
    loss = torch.nn.functional.mse_loss(rgb, target_flat[idxs_sampled][None])
    optimizer.zero_grad()
    loss.backward()
    # The release logs the pose before the update: a device copy, read on logging steps only.
    pose_before = cam_pose[0].detach().clone()
    optimizer.step()
    return rgb, loss, pose_before


def estimate_pose(render_par, net, input_image, input_pose, target_flat, focal, W, H, z_near, z_far,
                  lrate, n_steps, sampling, log_every=20):
    """Adam on the raw (1, 4, 4) pose; returns (poses, rgb patches, gt patches, losses) every log_every steps."""
    cam_pose = torch.clone(input_pose.detach()).unsqueeze(0)
    cam_pose.requires_grad = True
    optimizer = torch.optim.Adam(params=[cam_pose], lr=lrate)
    predicted_poses, fine_patches, gt_patches, losses = [], [], [], []
    for i_step in tqdm.trange(n_steps, desc="pose"):
        idxs_sampled = sample_pixels(sampling, H, W, device=cam_pose.device)
        rgb, loss, pose = pose_step(render_par, net, optimizer, cam_pose, input_image, input_pose,
                                    target_flat, idxs_sampled, focal, W, H, z_near, z_far)
        if i_step % log_every == 0:
            print(f"{i_step} step, Loss: {loss.item()}.")
            print(pose)
            predicted_poses.append(pose.cpu().numpy())
            # as released: the logged rays are shown as a 32x32 patch (1024 rays)
            fine_patches.append(rgb[0].detach().cpu().numpy().reshape(32, 32, 3))
            gt_patches.append(target_flat[idxs_sampled].detach().cpu().numpy().reshape(32, 32, 3))
            losses.append(loss.item())
    return predicted_poses, fine_patches, gt_patches, losses


def main(argv=None):
    """Runs the estimate and writes frames, overlays and the video; returns the logged poses and losses."""
    args, conf = util.args.parse_args(extra_args, default_expname="srn_car", default_data_format="srn", argv=argv)
    args.resume = True
    os.makedirs(args.output, exist_ok=True)
    device = util.get_cuda(args.gpu_id[0])
    net = make_model(conf["model"]).to(device=device).load_weights(args)
    renderer = NeRFRenderer.from_conf(conf["renderer"], eval_batch_size=args.ray_batch_size).to(device=device)
    render_par = renderer.bind_parallel(net, args.gpu_id, simple_output=True)

    z_near, z_far = args.z_near, args.z_far
    focal = torch.tensor(args.focal, dtype=torch.float32, device=device)
    sz = list(map(int, args.out_size.split()))
    if len(sz) == 1:
        H = W = sz[0]
    else:
        assert len(sz) == 2, "--out_size: one or two numbers (w h)"
        W, H = sz

    image_to_tensor = util.get_image_to_tensor_balanced()
    print(f"Input image: {args.input}")
    input_image = image_to_tensor(load_rgb(args.input, args.size)).to(device=device)
    input_pose = torch.eye(4, device=device)
    input_pose[2, -1] = args.radius
    print(f"Target image: {args.target}")
    target_image = np.asarray(load_rgb(args.target, args.size))
    if target_image.shape[:2] != (H, W):
        raise ValueError(f"{args.target}: resized to {target_image.shape[1]}x{target_image.shape[0]}, "
                         f"but the rendered image is {W}x{H} (--size / --out_size)")
    target_flat = torch.from_numpy(target_image.reshape(-1, 3) / 255.0).float().to(device=device)

    n_steps = args.n_steps if args.use_n_steps else N_STEPS_RELEASED
    predicted_poses, fine_patches, gt_patches, losses = estimate_pose(
        render_par, net, input_image, input_pose, target_flat, focal, W, H, z_near, z_far,
        args.lrate, n_steps, args.sampling, args.log_every)

    n_poses = len(predicted_poses)
    render_poses = torch.from_numpy(np.array(predicted_poses)).to(device=device)
    render_rays = util.gen_rays(render_poses, W, H, focal, z_near, z_far)
    with torch.no_grad():
        print("Rendering", n_poses * H * W, "rays")
        all_rgb_fine = [render_par(rays[None])[0][0] for rays in tqdm.tqdm(torch.split(render_rays.view(-1, 8), 80000))]
        rgb_fine = torch.cat(all_rgb_fine)
    frames = (rgb_fine.view(n_poses, H, W, 3).cpu().numpy() * 255).astype(np.uint8)
    target_u8 = (target_flat.cpu().numpy().reshape([H, W, 3]) * 255.0).astype(np.uint8)

    im_name = os.path.basename(os.path.splitext(args.input)[0])
    frames_dir_name = os.path.join(args.output, im_name + "_frames")
    os.makedirs(frames_dir_name, exist_ok=True)
    for i in range(n_poses):
        imageio.imwrite(os.path.join(frames_dir_name, "{:04}.png".format(i)), frames[i])
    for i in range(n_poses):
        if args.sampling == "patch":
            pred_image = create_image(fine_patches[i])
            gt_image = create_image(gt_patches[i])
            imageio.imwrite(f"./pred_patch_{i}.png", pred_image)
            imageio.imwrite(f"./gt_patch_{i}.png", gt_image)
            overlay_frame = (pred_image * 0.5).astype(np.uint8) + (gt_image * 0.5).astype(np.uint8)
        else:
            overlay_frame = (frames[i] * 0.5).astype(np.uint8) + (target_u8 * 0.5).astype(np.uint8)
        imageio.imwrite(f"./overlay_{i}.png", overlay_frame)

    vid_path = None
    if not args.no_vid:
        if args.gif:
            vid_path = os.path.join(args.output, im_name + "_vid.gif")
            imageio.mimwrite(vid_path, frames, duration=1000.0 / args.fps, loop=0)
        else:
            vid_path = os.path.join(args.output, im_name + "_vid.mp4")
            imageio.mimwrite(vid_path, frames, fps=args.fps, quality=8, macro_block_size=1)
        print("Wrote to", vid_path)
    return {"poses": np.array(predicted_poses), "losses": losses, "video": vid_path, "frames_dir": frames_dir_name}


if __name__ == "__main__":
    main()
