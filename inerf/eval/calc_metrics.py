# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""PSNR, SSIM and LPIPS (VGG) of eval.py's renders against the dataset images, per object then reduced.

    python -m inerf.eval.calc_metrics -D data/cars_test -O eval -F srn [--multicat] [-L viewlist]
        [--eval_view_list F] [-P '64'] [--exclude_dtu_bad] [--overwrite] [-R] [--dtu_sort]
        [--fix_reduce_accumulation]

Map: <output>/<obj>/metrics.txt ("psnr x", "ssim x", "lpips x"); reduce: <output>/all_metrics.txt
(per category with --multicat, using <datadir>/metadata.yaml's names) and all_metrics.json (ours: the
same numbers and the protocol block). SSIM is skimage's
structural_similarity (7x7 window), LPIPS the VGG v0.1 of common.metrics (local weights file).
Known bug kept by default: iNeRF-public sums the per-object metrics only while printing them,
i.e. only when there are fewer than 100 objects (otherwise the totals stay 0);
--fix_reduce_accumulation sums them always (as pixelNeRF does).
"""

import argparse
import json
import os
import os.path as osp
import warnings

import imageio.v2 as imageio
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm import tqdm

from common import metrics

METRIC_NAMES = ["psnr", "ssim", "lpips"]
DTU_BAD_VIEWS = [3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37, 38, 39]


def make_parser():
    """calc_metrics' flags."""
    parser = argparse.ArgumentParser(description="Calculate PSNR for rendered images.")
    parser.add_argument("--datadir", "-D", type=str, default="data/chairs_test",
                        help="Dataset directory of the split itself (e.g. data/cars_test)")
    parser.add_argument("--output", "-O", type=str, default="eval", help="Root path of rendered output (from eval.py)")
    parser.add_argument("--dataset_format", "-F", type=str, default="dvr", help="Dataset format, nerf | srn | dvr")
    parser.add_argument("--list_name", type=str, default="softras_test", help="Filter list prefix for DVR")
    parser.add_argument("--gpu_id", type=int, default=0, help="GPU id (CPU when there is no GPU)")
    parser.add_argument("--overwrite", action="store_true", help="overwriting existing metrics.txt")
    parser.add_argument("--exclude_dtu_bad", action="store_true", help="exclude hardcoded DTU bad views")
    parser.add_argument("--multicat", action="store_true",
                        help="Prepend category id to object id. Specify if model fits multiple categories.")
    parser.add_argument("--viewlist", "-L", type=str, default="",
                        help="Path to source view list e.g. src_dvr.txt; if specified, excludes the source view from evaluation")
    parser.add_argument("--eval_view_list", type=str, default=None, help="Path to eval view list")
    parser.add_argument("--primary", "-P", type=str, default="", help="List of views to exclude")
    parser.add_argument("--lpips_batch_size", type=int, default=32, help="Batch size for LPIPS")
    parser.add_argument("--reduce_only", "-R", action="store_true", help="skip the map (per-obj metric computation)")
    parser.add_argument("--metadata", type=str, default="metadata.yaml",
                        help="Path to dataset metadata under datadir, used for getting category names if --multicat")
    parser.add_argument("--dtu_sort", action="store_true", help="Sort using DTU scene order instead of lex")
    parser.add_argument("--fix_reduce_accumulation", action="store_true",
                        help="Fix: average over all objects even when there are 100 or more.")
    return parser


def list_and_image_dir(dataset_format, list_name):
    """(split list file name, image folder name) of a data format."""
    if dataset_format == "dvr":
        return list_name + ".lst", "image"
    if dataset_format == "srn":
        return "", "rgb"
    if dataset_format == "nerf":
        warnings.warn("test split not implemented for NeRF synthetic data format")
        return "", ""
    raise NotImplementedError("Not supported data format " + dataset_format)


def get_metrics(rgb, gt):
    """(psnr, ssim) of (H, W, 3) float images in [0, 1]."""
    ssim = structural_similarity(rgb, gt, channel_axis=-1, data_range=1)
    return peak_signal_noise_ratio(rgb, gt, data_range=1), ssim


def protocol(args):
    """How calc_metrics measures, for all_metrics.json: views, rounding, metric variants, reduction."""
    return {
        "dataset_format": args.dataset_format,
        "excluded_views": {"primary": list(map(int, args.primary.split())), "viewlist": args.viewlist or None,
                           "dtu_bad_views": bool(args.exclude_dtu_bad)},
        "eval_view_list": args.eval_view_list,
        "uint8_rounding": True,  # the renders are read back from eval.py's PNGs
        "psnr": "skimage peak_signal_noise_ratio, data_range 1, per view, mean over views",
        "ssim": "skimage structural_similarity, 7x7 uniform window, channel_axis -1, data_range 1",
        "lpips": "LPIPS v0.1 VGG16 (common.metrics), images in [0, 1] mapped to [-1, 1]",
        "reduce": "mean over objects" + (" (every object: --fix_reduce_accumulation)" if args.fix_reduce_accumulation
                                         else " (summed only with < 100 objects, as released)"),
    }


def isimage(path):
    """True for .jpg / .png names."""
    return osp.splitext(path)[1] in (".jpg", ".png")


def find_objects(args, list_name):
    """[(dataset object dir, render dir)] for the objects that have renders."""
    data_root, render_root = args.datadir, args.output
    if args.multicat:
        cats, fmt_obj_name = os.listdir(data_root), lambda c, x: c + "_" + x
    else:
        cats, fmt_obj_name = ["."], lambda c, x: x
    all_objs, total_objs = [], 0
    print("CATEGORICAL SUMMARY")
    for cat in cats:
        cat_root = osp.join(data_root, cat)
        if not osp.isdir(cat_root):
            continue
        objs = sorted(os.listdir(cat_root))
        if len(list_name) > 0:
            with open(osp.join(cat_root, list_name), "r") as f:
                split = {x.strip() for x in f.readlines()}
            objs = [x for x in objs if x in split]
        objs = [(osp.join(cat_root, x), osp.join(render_root, fmt_obj_name(cat, x))) for x in objs]
        objs = [x for x in objs if osp.isdir(x[0])]
        objs_avail = [x for x in objs if osp.exists(x[1])]
        print(cat, "TOTAL", len(objs), "AVAILABLE", len(objs_avail))
        total_objs += len(objs)
        all_objs.extend(objs_avail)
    print(">>> USING", len(all_objs), "OF", total_objs, "OBJECTS")
    return all_objs


def process_obj(args, path, rend_path, img_dir_name, exclude_views, eval_views, lpips_vgg, device):
    """Writes rend_path/metrics.txt: mean PSNR, SSIM, LPIPS over the rendered views (kept if present)."""
    im_root = osp.join(path, img_dir_name) if img_dir_name else path
    out_path = osp.join(rend_path, "metrics.txt")
    if osp.exists(out_path) and not args.overwrite:
        return
    psnr_avg, ssim_avg, gts, preds = 0.0, 0.0, [], []
    for im_name in [x for x in sorted(os.listdir(im_root)) if isimage(x)]:
        im_name_id = int(osp.splitext(im_name)[0])
        im_rend_path = osp.join(rend_path, "{:06}.png".format(im_name_id))
        if not osp.exists(im_rend_path) or im_name_id in exclude_views:
            continue
        if eval_views is not None and im_name_id not in eval_views:
            continue
        gt = imageio.imread(osp.join(im_root, im_name)).astype(np.float32)[..., :3] / 255.0
        pred = imageio.imread(im_rend_path).astype(np.float32)[..., :3] / 255.0
        psnr, ssim = get_metrics(pred, gt)
        psnr_avg += psnr
        ssim_avg += ssim
        gts.append(torch.from_numpy(gt))
        preds.append(torch.from_numpy(pred))
    if not preds:
        raise FileNotFoundError(f"{rend_path}: no rendered view matches an image of {im_root}")
    gts, preds = torch.stack(gts), torch.stack(preds)
    with torch.no_grad():
        lpips = torch.cat([lpips_vgg(p.to(device), g.to(device)) for p, g in
                           zip(torch.split(preds, args.lpips_batch_size), torch.split(gts, args.lpips_batch_size))])
    num_ims = len(preds)
    with open(out_path, "w") as f:
        f.write("psnr {}\nssim {}\nlpips {}".format(psnr_avg / num_ims, ssim_avg / num_ims, lpips.mean().item()))


def run_map(args):
    """Per-object metrics.txt for every object with renders."""
    list_name, img_dir_name = list_and_image_dir(args.dataset_format, args.list_name)
    exclude_lut = {}
    if len(args.viewlist) > 0:
        print("Excluding views from list", args.viewlist)
        with open(args.viewlist, "r") as f:
            rows = [x.strip().split() for x in f.readlines() if x.strip()]
        exclude_lut = {x[0] + "/" + x[1]: list(map(int, x[2:])) for x in rows}
    base_exclude_views = list(map(int, args.primary.split()))
    if args.exclude_dtu_bad:
        base_exclude_views.extend(DTU_BAD_VIEWS)
    eval_views = None
    if args.eval_view_list is not None:
        with open(args.eval_view_list, "r") as f:
            eval_views = list(map(int, f.readline().split()))
        print("Only using views", eval_views)
    all_objs = find_objects(args, list_name)
    device = torch.device(f"cuda:{args.gpu_id}" if torch.cuda.is_available() else "cpu")
    lpips_vgg = metrics.LPIPS(net="vgg").to(device)
    for obj_path, obj_rend_path in tqdm(all_objs):
        exclude_views = list(exclude_lut[osp.basename(obj_rend_path).replace("_", "/")]) if exclude_lut else []
        exclude_views.extend(base_exclude_views)
        process_obj(args, obj_path, obj_rend_path, img_dir_name, exclude_views, eval_views, lpips_vgg, device)


def run_reduce(args):
    """Averages the objects' metrics.txt into <output>/all_metrics.txt; returns the totals."""
    render_root = args.output
    if args.multicat:
        with open(osp.join(args.datadir, args.metadata), "r") as f:
            meta = json.load(f)
        cats = sorted(meta.keys())
        cat_description = {cat: meta[cat]["name"].split(",")[0] for cat in cats}
        cat_sz = {cat: 0 for cat in cats}
    objs = [osp.join(render_root, x) for x in os.listdir(render_root) if x[0] != "_"]
    objs = [x for x in objs if osp.isdir(x)]
    all_objs = sorted(objs, key=lambda x: int(x[x.rindex("/") + 5:])) if args.dtu_sort else sorted(objs)
    if not all_objs:
        raise FileNotFoundError(f"{render_root}: no object folders to reduce (run eval.py and the map step first)")
    print(">>> PROCESSING", len(all_objs), "OBJECTS")

    all_metrics = {}
    for name in METRIC_NAMES:
        if args.multicat:
            for cat in cats:
                all_metrics[cat + "." + name] = 0.0
        all_metrics[name] = 0.0
    should_print_all_objs = len(all_objs) < 100
    for obj_root in tqdm(all_objs):
        with open(osp.join(obj_root, "metrics.txt"), "r") as f:
            obj_metrics = [line.split() for line in f.readlines() if line.strip()]
        if args.multicat:
            cat_name = osp.basename(obj_root).split("_")[0]
            cat_sz[cat_name] += 1
            for metric, val in obj_metrics:
                all_metrics[cat_name + "." + metric] += float(val)
        if args.fix_reduce_accumulation or should_print_all_objs:
            for metric, val in obj_metrics:
                all_metrics[metric] += float(val)
        if should_print_all_objs:
            print(obj_root, " ".join(val for _, val in obj_metrics))

    for name in METRIC_NAMES:
        if args.multicat:
            for cat in cats:
                if cat_sz[cat] > 0:
                    all_metrics[cat + "." + name] /= cat_sz[cat]
        all_metrics[name] /= len(all_objs)
        print(name, all_metrics[name])

    metrics_txt = []
    total_txt = ""
    if args.multicat:
        for cat in cats:
            if cat_sz[cat] > 0:
                cat_txt = "{:12s}".format(cat_description[cat])
                for name in METRIC_NAMES:
                    cat_txt += " {}: {:.6f}".format(name, all_metrics[cat + "." + name])
                metrics_txt.append(cat_txt + " n_inst: {}".format(cat_sz[cat]))
        total_txt = "---\n{:12s}".format("total")
    for name in METRIC_NAMES:
        total_txt += " {}: {:.6f}".format(name, all_metrics[name])
    metrics_txt.append(total_txt)
    out_metrics_path = osp.join(render_root, "all_metrics.txt")
    with open(out_metrics_path, "w") as f:
        f.write("\n".join(metrics_txt))
    with open(osp.join(render_root, "all_metrics.json"), "w") as f:
        json.dump({"metrics": all_metrics, "objects": len(all_objs), "protocol": protocol(args)}, f, indent=1)
    print("WROTE", out_metrics_path)
    print("\n".join(metrics_txt))
    return {name: all_metrics[name] for name in METRIC_NAMES}


def main(argv=None):
    """Map (unless -R) then reduce; returns the reduced metrics."""
    args = make_parser().parse_args(argv)
    if not args.reduce_only:
        print(">>> Compute")
        run_map(args)
    print(">>> Reduce")
    return run_reduce(args)


if __name__ == "__main__":
    main()
