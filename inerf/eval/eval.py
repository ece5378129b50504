# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF's full evaluation: renders every target view of every object, PSNR and SSIM per object.

    python -m inerf.eval.eval -n srn_car -D data/cars -F srn -P '64' [-O eval] [--split test]
        [-L viewlist/src_dvr.txt] [--eval_view_list viewlist/srn_eval_views.txt] [--coarse]
        [--include_src] [--multicat] [--write_depth] [--write_compare] [--free_pose] [--scale 1]

Writes <output>/<obj>/<view>.png and <output>/finish.txt ("obj psnr ssim 1" per object; a rerun
skips the objects listed there and resumes the running means). SSIM is skimage's
structural_similarity (7x7 uniform window, as the release's compare_ssim); PSNR skimage's.
Unless --no_compare_gt, each object also gets <output>/<obj>/sheets/view_<i>.png per target view
(ground truth | render | depth | error, with its PSNR) and sheets/summary.png, logged to TensorBoard
in <output> at step = the object's index.
"""

import os
import warnings

import cv2
import imageio.v2 as imageio
import numpy as np
import torch
import tqdm
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common import sheets
from common.logger import Logger
from inerf.src import util
from inerf.src.data import get_split_dataset
from inerf.src.model import make_model
from inerf.src.render import NeRFRenderer


def extra_args(parser):
    """eval's flags (the release's, plus --num_workers)."""
    parser.add_argument("--split", type=str, default="test", help="Split of data to use train | val | test")
    parser.add_argument("--source", "-P", type=str, default="64",
                        help="Source view(s) for each object. Alternatively, specify -L to viewlist file and leave this blank.")
    parser.add_argument("--eval_view_list", type=str, default=None, help="Path to eval view list")
    parser.add_argument("--coarse", action="store_true", help="Coarse network as fine")
    parser.add_argument("--no_compare_gt", action="store_true",
                        help="Skip GT comparison (metric won't be computed) and only render images")
    parser.add_argument("--multicat", action="store_true",
                        help="Prepend category id to object id. Specify if model fits multiple categories.")
    parser.add_argument("--viewlist", "-L", type=str, default="",
                        help="Path to source view list e.g. src_dvr.txt; if specified, overrides source/P")
    parser.add_argument("--output", "-O", type=str, default="eval", help="If specified, saves generated images to directory")
    parser.add_argument("--include_src", action="store_true", help="Include source views in calculation")
    parser.add_argument("--scale", type=float, default=1.0, help="Video scale relative to input size")
    parser.add_argument("--write_depth", action="store_true", help="Write depth image")
    parser.add_argument("--write_compare", action="store_true", help="Write GT comparison image")
    parser.add_argument("--free_pose", action="store_true",
                        help="Set to indicate poses may change between objects. In most of our datasets, the test set has fixed poses.")
    parser.add_argument("--num_workers", type=int, default=8, help="DataLoader workers (the release's 8)")
    return parser


def read_finished(finish_path):
    """(finished object names, total psnr, total ssim, count) from a finish.txt, zeros if absent."""
    if not os.path.exists(finish_path):
        return set(), 0.0, 0.0, 0
    with open(finish_path, "r") as f:
        lines = [x.strip().split() for x in f.readlines()]
    lines = [x for x in lines if len(x) == 4]
    cnt = sum(int(x[3]) for x in lines)
    if cnt == 0:
        return {x[0] for x in lines}, 0.0, 0.0, 0
    return {x[0] for x in lines}, sum(float(x[1]) for x in lines), sum(float(x[2]) for x in lines), cnt


def read_viewlist(path):
    """{"<cat>/<obj>": source view indices} from a viewlist file ("cat obj v1 v2 ...")."""
    with open(path, "r") as f:
        rows = [x.strip().split() for x in f.readlines() if x.strip()]
    return {x[0] + "/" + x[1]: torch.tensor(list(map(int, x[2:])), dtype=torch.long) for x in rows}


def image_metrics(rgb, gt):
    """(psnr, ssim) of two (H, W, 3) float images in [0, 1]."""
    ssim = structural_similarity(rgb, gt, channel_axis=-1, data_range=1)
    psnr = peak_signal_noise_ratio(rgb, gt, data_range=1)
    return psnr, ssim


def write_object_sheets(obj_out_dir, rgb, gt, depth, psnrs, views, log, step):
    """Contact sheets of one object's target views (rgb, gt [N, H, W, 3], depth [N, H, W], their
    PSNRs and view indices) in obj_out_dir/sheets, logged at `step`."""
    sheets.write_sheets(obj_out_dir, ({"gt": gt[i], "pred": rgb[i], "depth": depth[i], "psnr": psnrs[i],
                                       "label": f"view {views[i]}"} for i in range(len(views))), log=log, step=step)


def main(argv=None):
    """Evaluates the split; returns (mean psnr, mean ssim) over the objects."""
    args, conf = util.args.parse_args(extra_args, default_conf="conf/default_mv.conf", default_expname="shapenet",
                                      argv=argv)
    args.resume = True
    if args.scale != 1.0 and not args.no_compare_gt:
        raise ValueError("--scale != 1 needs --no_compare_gt: the ground-truth images are not rescaled "
                         "(the release fails comparing images of different sizes)")
    device = util.get_cuda(args.gpu_id[0])
    dset = get_split_dataset(args.dataset_format, args.datadir, want_split=args.split, training=False)
    data_loader = torch.utils.data.DataLoader(dset, batch_size=1, shuffle=False, num_workers=args.num_workers,
                                              pin_memory=False)
    # The checkpoint and the first object are read before the output folder is touched.
    net = make_model(conf["model"]).to(device=device).load_weights(args)
    NV = dset[0]["images"].shape[0]
    output_dir = args.output.strip()
    has_output = len(output_dir) > 0
    finished, total_psnr, total_ssim, cnt = set(), 0.0, 0.0, 0
    finish_file = None
    if has_output:
        finish_path = os.path.join(output_dir, "finish.txt")
        os.makedirs(output_dir, exist_ok=True)
        finished, total_psnr, total_ssim, cnt = read_finished(finish_path)
        if cnt > 0:
            print("resume psnr", total_psnr / cnt, "ssim", total_ssim / cnt)
        finish_file = open(finish_path, "a", buffering=1)
        print("Writing images to", output_dir)
    log = Logger(output_dir) if has_output and not args.no_compare_gt else None

    renderer = NeRFRenderer.from_conf(conf["renderer"], lindisp=dset.lindisp,
                                      eval_batch_size=args.ray_batch_size).to(device=device)
    if args.coarse:
        net.mlp_fine = None
    if renderer.n_coarse < 64:
        renderer.n_coarse = 64  # as released: at least 64 coarse samples at evaluation
    if args.coarse:
        renderer.n_coarse = 64
        renderer.n_fine = 128
        renderer.using_fine = True
    render_par = renderer.bind_parallel(net, args.gpu_id, simple_output=True).eval()
    z_near, z_far = dset.z_near, dset.z_far

    use_source_lut = len(args.viewlist) > 0
    if use_source_lut:
        print("Using views from list", args.viewlist)
        source_lut = read_viewlist(args.viewlist)
    else:
        source = torch.tensor(sorted(map(int, args.source.split())), dtype=torch.long)
    if args.eval_view_list is not None:
        with open(args.eval_view_list, "r") as f:
            eval_views = torch.tensor(list(map(int, f.readline().split())))
        target_view_mask_init = torch.zeros(NV, dtype=torch.bool)
        target_view_mask_init[eval_views] = 1
    else:
        target_view_mask_init = torch.ones(NV, dtype=torch.bool)

    all_rays = None
    total_objs = len(data_loader)
    with torch.no_grad():
        for obj_idx, data in enumerate(data_loader):
            print("OBJECT", obj_idx, "OF", total_objs, "PROGRESS", obj_idx / total_objs * 100.0, "%", data["path"][0])
            dpath = data["path"][0]
            obj_basename = os.path.basename(dpath)
            cat_name = os.path.basename(os.path.dirname(dpath))
            obj_name = cat_name + "_" + obj_basename if args.multicat else obj_basename
            if has_output and obj_name in finished:
                print("(skip)")
                continue
            images = data["images"][0]  # (NV, 3, H, W)
            NV, _, H, W = images.shape
            if args.scale != 1.0:
                Ht, Wt = int(H * args.scale), int(W * args.scale)
                if abs(Ht / args.scale - H) > 1e-10 or abs(Wt / args.scale - W) > 1e-10:
                    warnings.warn(f"Inexact scaling, please check {args.scale} times ({H}, {W}) is integral")
                H, W = Ht, Wt

            # Test sets share one set of poses: rays are made once unless views or poses differ.
            if all_rays is None or use_source_lut or args.free_pose:
                if use_source_lut:
                    source = source_lut[cat_name + "/" + obj_basename]
                src_view_mask = torch.zeros(NV, dtype=torch.bool)
                src_view_mask[source] = 1
                focal = data["focal"][0]
                if isinstance(focal, float):
                    focal = torch.tensor(focal, dtype=torch.float32)
                focal = focal[None]
                c = data.get("c")
                if c is not None:
                    c = c[0].to(device=device).unsqueeze(0)
                poses = data["poses"][0]
                src_poses = poses[src_view_mask].to(device=device)
                target_view_mask = target_view_mask_init.clone()
                if not args.include_src:
                    target_view_mask *= ~src_view_mask
                novel_view_idxs = target_view_mask.nonzero(as_tuple=False).reshape(-1)
                all_rays = util.gen_rays(poses[target_view_mask].reshape(-1, 4, 4), W, H, focal * args.scale,
                                         z_near, z_far, c=c * args.scale if c is not None else None)
                all_rays = all_rays.reshape(-1, 8).to(device=device)
                focal = focal.to(device=device)

            n_gen_views = len(novel_view_idxs)
            net.encode(images[src_view_mask].to(device=device).unsqueeze(0), src_poses.unsqueeze(0), focal, c=c)
            all_rgb, all_depth = [], []
            for rays in tqdm.tqdm(torch.split(all_rays, args.ray_batch_size, dim=0)):
                rgb, depth = render_par(rays[None])
                all_rgb.append(rgb[0].cpu())
                all_depth.append(depth[0].cpu())
            all_depth = (torch.cat(all_depth) - z_near) / (z_far - z_near)
            all_depth = all_depth.reshape(n_gen_views, H, W).numpy()
            all_rgb = torch.clamp(torch.cat(all_rgb).reshape(n_gen_views, H, W, 3), 0.0, 1.0).numpy()

            obj_out_dir = os.path.join(output_dir, obj_name)
            if has_output:
                os.makedirs(obj_out_dir, exist_ok=True)
                for i in range(n_gen_views):
                    view = novel_view_idxs[i].item()
                    imageio.imwrite(os.path.join(obj_out_dir, "{:06}.png".format(view)),
                                    (all_rgb[i] * 255).astype(np.uint8))
                    if args.write_depth:
                        cv2.imwrite(os.path.join(obj_out_dir, "{:06}_depth.exr".format(view)), all_depth[i])
                        imageio.imwrite(os.path.join(obj_out_dir, "{:06}_depth_norm.png".format(view)),
                                        util.cmap(all_depth[i]))

            curr_psnr, curr_ssim = 0.0, 0.0
            if not args.no_compare_gt:
                rgb_gt_all = (images * 0.5 + 0.5)[target_view_mask].permute(0, 2, 3, 1).contiguous().numpy()
                psnrs = []
                for view_idx in range(n_gen_views):
                    psnr, ssim = image_metrics(all_rgb[view_idx], rgb_gt_all[view_idx])
                    psnrs.append(psnr)
                    curr_psnr += psnr
                    curr_ssim += ssim
                    if args.write_compare:
                        out_file = os.path.join(obj_out_dir, "{:06}_compare.png".format(novel_view_idxs[view_idx].item()))
                        out_im = np.hstack((all_rgb[view_idx], rgb_gt_all[view_idx]))
                        imageio.imwrite(out_file, (out_im * 255).astype(np.uint8))
                if log is not None:
                    write_object_sheets(obj_out_dir, all_rgb, rgb_gt_all, all_depth, psnrs, novel_view_idxs.tolist(),
                                        log, obj_idx)
            curr_psnr /= n_gen_views
            curr_ssim /= n_gen_views
            total_psnr += curr_psnr
            total_ssim += curr_ssim
            cnt += 1
            if not args.no_compare_gt:
                print("curr psnr", curr_psnr, "ssim", curr_ssim, "running psnr", total_psnr / cnt, "ssim", total_ssim / cnt)
            if finish_file is not None:
                finish_file.write("{} {} {} {}\n".format(obj_name, curr_psnr, curr_ssim, 1))
    if finish_file is not None:
        finish_file.close()
    if log is not None:
        log.close()
    if cnt == 0:
        raise RuntimeError(f"no object evaluated: the {args.split} split of {args.datadir} is empty or already finished")
    print("final psnr", total_psnr / cnt, "ssim", total_ssim / cnt)
    return total_psnr / cnt, total_ssim / cnt


if __name__ == "__main__":
    main()
