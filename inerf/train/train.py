# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF training on many objects (SRN, NMR ShapeNet, DTU, multi-object scenes).

    python -m inerf.train.train -n srn_car -c conf/exp/srn.conf -D data/cars [-B 4] [-V '1']
        [-R 128] [--lr 1e-4] [--gamma 1.0] [--epochs N] [--resume] [--freeze_enc]
        [--no_bbox_step 100000] [--fixed_test] [--gpu_id '0']

Per batch: SB objects, -V source views each (one count drawn per batch from the list), -R rays
per object drawn from all views (inside the object bounding boxes until --no_bbox_step), MSE of
coarse and fine colours weighted by loss.lambda_coarse / lambda_fine. Checkpoints in
checkpoints/<name>/ (pixel_nerf_latest, _optim, _iter, _renderer; --resume continues),
TensorBoard logs in logs/<name>, visualisations in visuals/<name>.
"""

import os
import sys

import numpy as np
import torch

from common import checkpoints, memory
from inerf.src import util
from inerf.src.data import get_split_dataset
from inerf.src.model import loss, make_model
from inerf.src.render import NeRFRenderer
from inerf.src.render.nerf import as_dotmap
from inerf.train import trainlib

PROBE_RAYS = 64  # rays of the start-up measurement of the bytes saved for backward


def extra_args(parser):
    """train's flags (the release's, plus --num_workers)."""
    parser.add_argument("--batch_size", "-B", type=int, default=4, help="Object batch size ('SB')")
    parser.add_argument("--nviews", "-V", type=str, default="1",
                        help="Number of source views (multiview); put multiple (space delim) to pick randomly per batch ('NV')")
    parser.add_argument("--freeze_enc", action="store_true", default=None, help="Freeze encoder weights and only train MLP")
    parser.add_argument("--no_bbox_step", type=int, default=100000, help="Step to stop using bbox sampling")
    parser.add_argument("--fixed_test", action="store_true", default=None,
                        help="Visualise the first test batch every time instead of the next one")
    parser.add_argument("--num_workers", type=int, default=8, help="DataLoader workers (the release's 8)")
    parser.add_argument("--grad_accum_steps", type=int, default=1,
                        help="Split each object's --ray_batch_size rays into this many micro-batches, "
                             "accumulating their gradients (the same update, less memory)")
    parser.add_argument("--no_nan_check", action="store_true",
                        help="train on after a non-finite loss, as released (by default training stops "
                             "naming the step, before the loss reaches a checkpoint)")
    return parser


def check_args(args):
    """Raises ValueError naming the flag when --grad_accum_steps does not divide --ray_batch_size."""
    memory.check_grad_accum_steps(args.ray_batch_size, args.grad_accum_steps, setting="--grad_accum_steps",
                                  batch_setting="--ray_batch_size")


def bytes_per_ray(net, renderer, rgb_crit, data, z_near, z_far, device, probe_rays=PROBE_RAYS):
    """Bytes autograd saves per ray of a training step (coarse + fine MLPs, compositing, loss),
    measured on probe_rays rays of the first view of the dataset item `data` (images (NV, 3, H, W),
    poses, focal). The source view is encoded without a graph (its activations do not grow with
    the rays), and the samples are deterministic, so nothing is drawn from the RNGs."""
    images, poses = data["images"][:1].to(device), data["poses"][:1].to(device)
    focal = torch.as_tensor(data["focal"]).reshape(-1)[:1].to(device)
    with torch.no_grad():
        net.encode(images[None], poses[None], focal)
    H, W = images.shape[-2:]
    rays = util.gen_rays(poses, W, H, focal, z_near, z_far).reshape(1, -1, 8)[:, :probe_rays]
    render_par = renderer.bind_parallel(net)
    det, renderer.det = renderer.det, True

    def step():
        out = as_dotmap(render_par(rays, want_weights=True))
        levels = [out.coarse] + ([out.fine] if "fine" in out else [])
        return sum(rgb_crit(level.rgb, torch.zeros_like(level.rgb)) for level in levels)

    try:
        _, n_bytes = memory.saved_bytes(step)
    finally:
        renderer.det = det
    return n_bytes / rays.shape[1]


class PixelNeRFTrainer(trainlib.Trainer):
    """The release's PixelNeRFTrainer: ray batches per object, coarse + fine RGB losses."""

    def __init__(self, net, renderer, dset, val_dset, args, conf, device):
        self.device = device
        self.renderer = renderer
        self.render_par = renderer.bind_parallel(net, args.gpu_id).eval()
        self.nviews = list(map(int, args.nviews.split()))
        super().__init__(net, dset, val_dset, args, conf["train"], device=device)
        self.renderer_state_path = os.path.join(args.checkpoints_path, args.name, "_renderer")
        self.lambda_coarse = conf.get_float("loss.lambda_coarse")
        self.lambda_fine = conf.get_float("loss.lambda_fine", 1.0)
        print("lambda coarse {} and fine {}".format(self.lambda_coarse, self.lambda_fine))
        self.rgb_coarse_crit = loss.get_rgb_loss(conf["loss.rgb"], True)
        fine_loss_conf = conf["loss.rgb_fine"] if "rgb_fine" in conf["loss"] else conf["loss.rgb"]
        self.rgb_fine_crit = loss.get_rgb_loss(fine_loss_conf, False)
        if args.resume and os.path.exists(self.renderer_state_path):
            renderer.load_state_dict(checkpoints.load_checkpoint(self.renderer_state_path, device))
        self.z_near = dset.z_near
        self.z_far = dset.z_far
        self.use_bbox = args.no_bbox_step > 0

    def post_batch(self, epoch, batch):
        self.renderer.sched_step(self.args.batch_size)

    def extra_save_state(self):
        checkpoints.save_atomic(self.renderer_state_path, self.renderer.state_dict())

    def sample_rays(self, data, is_train, global_step):
        """(rays (SB, R, 8), rgb_gt (SB, R, 3)): R = ray_batch_size pixels of each object's views."""
        all_images = data["images"]  # (SB, NV, 3, H, W)
        SB, NV, _, H, W = all_images.shape
        all_bboxes = data.get("bbox")
        if self.use_bbox and global_step >= self.args.no_bbox_step:
            self.use_bbox = False
            print(">>> Stopped using bbox sampling @ iter", global_step)
        if not is_train or not self.use_bbox:
            all_bboxes = None
        all_rgb_gt, all_rays = [], []
        for obj_idx in range(SB):
            c = data["c"][obj_idx] if "c" in data else None
            cam_rays = util.gen_rays(data["poses"][obj_idx], W, H, data["focal"][obj_idx], self.z_near, self.z_far, c=c)
            rgb_gt_all = (all_images[obj_idx] * 0.5 + 0.5).permute(0, 2, 3, 1).contiguous().reshape(-1, 3)
            if all_bboxes is not None:
                pix = util.bbox_sample(all_bboxes[obj_idx], self.args.ray_batch_size)
                pix_inds = pix[..., 0] * H * W + pix[..., 1] * W + pix[..., 2]
            else:
                pix_inds = torch.randint(0, NV * H * W, (self.args.ray_batch_size,), device=all_images.device)
            all_rgb_gt.append(rgb_gt_all[pix_inds])
            all_rays.append(cam_rays.view(-1, cam_rays.shape[-1])[pix_inds])
        return torch.stack(all_rays).to(self.device), torch.stack(all_rgb_gt).to(self.device)

    def calc_losses(self, data, is_train=True, global_step=0):
        """Renders the sampled rays from random source views; backward if is_train -> {rc, rf, t}."""
        if "images" not in data:
            return {}
        SB, NV = data["images"].shape[:2]
        # Random draws in the release's order: view count, source views, then rays.
        curr_nviews = self.nviews[torch.randint(0, len(self.nviews), ()).item()]
        if curr_nviews == 1:
            image_ord = torch.randint(0, NV, (SB, 1))
        else:
            image_ord = torch.stack([torch.from_numpy(np.random.choice(NV, curr_nviews, replace=False))
                                     for _ in range(SB)])
        all_rays, all_rgb_gt = self.sample_rays(data, is_train, global_step)
        all_images = data["images"].to(self.device)
        all_poses = data["poses"].to(self.device)
        image_ord = image_ord.to(self.device)
        all_c = data.get("c")
        self.net.encode(util.batched_index_select_nd(all_images, image_ord),
                        util.batched_index_select_nd(all_poses, image_ord),
                        data["focal"].to(self.device), c=all_c.to(self.device) if all_c is not None else None)
        k = getattr(self.args, "grad_accum_steps", 1)
        loss_dict = {}
        # Micro-batches of the rays of every object; each loss is scaled by 1 / k so that the
        # accumulated gradient is the one-shot one. The encoder's graph is shared (retained until
        # the last backward), so BatchNorm sees the batch once, as in one shot.
        for i, (rays, rgb_gt) in enumerate(zip(all_rays.chunk(k, 1), all_rgb_gt.chunk(k, 1))):
            render_dict = as_dotmap(self.render_par(rays, want_weights=True))
            coarse_loss = self.rgb_coarse_crit(render_dict.coarse.rgb, rgb_gt)
            rgb_loss = coarse_loss
            parts = {"rc": coarse_loss * self.lambda_coarse}
            if "fine" in render_dict:
                fine_loss = self.rgb_fine_crit(render_dict.fine.rgb, rgb_gt)
                rgb_loss = coarse_loss * self.lambda_coarse + fine_loss * self.lambda_fine
                parts["rf"] = fine_loss * self.lambda_fine
            parts["t"] = rgb_loss
            if is_train:
                (rgb_loss / k).backward(retain_graph=i < k - 1)
            for name, value in parts.items():
                loss_dict[name] = loss_dict.get(name, 0.0) + value.detach() / k
        # 0-dim device tensors: the loop reads them on its print and eval steps only.
        return loss_dict

    def train_step(self, data, global_step):
        return self.calc_losses(data, is_train=True, global_step=global_step)

    def eval_step(self, data, global_step):
        self.renderer.eval()
        losses = self.calc_losses(data, is_train=False, global_step=global_step)
        self.renderer.train()
        return losses

    def vis_step(self, data, global_step, idx=None):
        """Sources | target | depth | rgb | alpha rows (coarse, then fine) of one random object and view."""
        if "images" not in data:
            return None, None
        batch_idx = np.random.randint(0, data["images"].shape[0]) if idx is None else idx
        images = data["images"][batch_idx].to(self.device)
        poses = data["poses"][batch_idx].to(self.device)
        focal = data["focal"][batch_idx:batch_idx + 1]
        c = data.get("c")
        if c is not None:
            c = c[batch_idx:batch_idx + 1]
        NV, _, H, W = images.shape
        cam_rays = util.gen_rays(poses, W, H, focal, self.z_near, self.z_far, c=c)
        images_0to1 = images * 0.5 + 0.5
        curr_nviews = self.nviews[torch.randint(0, len(self.nviews), (1,)).item()]
        views_src = np.sort(np.random.choice(NV, curr_nviews, replace=False))
        view_dest = np.random.randint(0, NV - curr_nviews)
        for vs in range(curr_nviews):
            view_dest += view_dest >= views_src[vs]
        views_src = torch.from_numpy(views_src)
        self.renderer.eval()
        source_views = images_0to1[views_src].permute(0, 2, 3, 1).cpu().numpy().reshape(-1, H, W, 3)
        gt = images_0to1[view_dest].permute(1, 2, 0).cpu().numpy().reshape(H, W, 3)
        with torch.no_grad():
            self.net.encode(images[views_src].unsqueeze(0), poses[views_src].unsqueeze(0), focal.to(self.device),
                            c=c.to(self.device) if c is not None else None)
            render_dict = as_dotmap(self.render_par(cam_rays[view_dest].reshape(1, H * W, -1), want_weights=True))
        rows = []
        for level in ("coarse", "fine"):
            if level not in render_dict:
                continue
            out = render_dict[level]
            rgb_np = out.rgb[0].cpu().numpy().reshape(H, W, 3)
            alpha_np = out.weights[0].sum(dim=-1).cpu().numpy().reshape(H, W)
            depth_np = out.depth[0].cpu().numpy().reshape(H, W)
            print("{} rgb min {} max {}, alpha min {} max {}".format(
                level[0], rgb_np.min(), rgb_np.max(), alpha_np.min(), alpha_np.max()))
            rows.append(np.hstack([*source_views, gt, util.cmap(depth_np) / 255, rgb_np, util.cmap(alpha_np) / 255]))
            rgb_psnr = rgb_np
        psnr = util.psnr(rgb_psnr, gt)
        print("psnr", psnr)
        self.renderer.train()
        return np.vstack(rows), {"psnr": psnr}


def main(argv=None):
    """Builds data, net and renderer from the command line and trains; returns the trainer."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError("pixelNeRF trains in one process, on several GPUs through DataParallel "
                           "(--gpu_id '0 1 ...') as released; do not launch it with torchrun")
    args, conf = util.args.parse_args(extra_args, training=True, default_ray_batch_size=128, argv=argv,
                                      check=check_args, required=("model", "renderer", "train", "loss"))
    device = util.get_cuda(args.gpu_id[0])
    dset, val_dset, _ = get_split_dataset(args.dataset_format, args.datadir)
    print("dset z_near {}, z_far {}, lindisp {}".format(dset.z_near, dset.z_far, dset.lindisp))
    net = make_model(conf["model"]).to(device=device)
    net.stop_encoder_grad = args.freeze_enc
    if args.freeze_enc:
        print("Encoder frozen")
        net.encoder.eval()
    renderer = NeRFRenderer.from_conf(conf["renderer"], lindisp=dset.lindisp).to(device=device)
    trainer = PixelNeRFTrainer(net, renderer, dset, val_dset, args, conf, device)
    per_ray = bytes_per_ray(net, renderer, trainer.rgb_fine_crit, dset[0], dset.z_near, dset.z_far, device)
    print(memory.describe_prediction([p for p in net.parameters() if p.requires_grad], per_ray,
                                     args.batch_size * args.ray_batch_size, args.grad_accum_steps, PROBE_RAYS))
    trainer.start()
    return trainer


if __name__ == "__main__":
    try:
        main()
    except FloatingPointError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
