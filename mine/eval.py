"""Novel-view metrics of a MINE checkpoint on a held-out set, per protocol, into metrics.json.

    python -m mine.eval --checkpoint_path RUN/checkpoint_latest.pth [--data_path VAL] [--output_dir D]
        [--protocols 5,10,random] [--gpus 0] [--extra_config JSON] [--seed 0]

`params.yaml` beside the checkpoint gives the model and `data.name`; the set is `data.val_set_path`
(llff: `data.training_set_path`, whose scenes hold the `images_*_val` views) unless --data_path is given. Protocols: realestate10k with an evaluation-pairs JSON: 5 frames,
10 frames and a random offset apart (Tucker & Snavely's); kitti_raw: left -> right stereo pairs;
flowers: centre view -> the four corner views; llff: the LLFF loader's validation pairs.

Each target is synthesised at full resolution as in the original's evaluation (source-RGB
blending, translation divided by the scale factor from the sparse points, planes drawn per
disparity bin unless mpi.fix_disparity), then scored with PSNR, SSIM in MINE's variant
(network/ssim.py: 11-tap Gaussian window, sigma 1.5, zero padding, mean over the image) and
LPIPS-VGG (v0.1, common.metrics; inputs mapped from [0, 1] to [-1, 1]) when its weights file exists.
`lpips_original_range` is LPIPS as the original's validation computed it ([0, 1] images given to
lpips.LPIPS as if they were in [-1, 1]). `testing.crop_fraction` (default 0: the release crops
nothing) scores a central crop instead, e.g. 0.05 for the central 90% that later single-view MPI
evaluations on RealEstate10K use.

Beside metrics.json: sheets/view_<i>.png per scored target (ground truth | synthesis | synthesised
disparity | error, the label naming the protocol and item) and sheets/summary.png, also logged to
TensorBoard in the output folder.
"""

import argparse
import json
import logging
import os
import random
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from common import metrics, sheets
from common.logger import Logger
from mine.network.layers import psnr
from mine.network.ssim import ssim
from mine.synthesis_task import SynthesisTask
from mine.visualizations.image_to_video import load_params, pick_device

SSIM_VARIANT = "MINE network/ssim.py: 11-tap Gaussian window (sigma 1.5), zero padding, image mean"
LPIPS_VARIANT = "LPIPS v0.1 VGG16 (common.metrics), images in [0, 1] mapped to [-1, 1]"


def default_protocols(config, root):
    """The protocols a dataset is evaluated under."""
    if config["data.name"] == "realestate10k" and os.path.isfile(root):
        return ["5", "10", "random"]
    return {"realestate10k": [str(config.get("testing.frames_apart", "random"))], "kitti_raw": ["stereo"],
            "flowers": ["centre_to_corners"], "llff": ["next_view"]}[config["data.name"]]


def make_val_dataset(config, root, protocol, logger):
    """The validation Dataset of data.name for `protocol` (realestate10k: testing.frames_apart)."""
    name = config["data.name"]
    args = dict(config=dict(config, **{"testing.frames_apart": protocol}) if name == "realestate10k" else config,
                logger=logger, root=root, is_validation=True, img_size=(config["data.img_w"], config["data.img_h"]),
                supervision_count=1, visible_points_count=config["data.visible_point_count"])
    if name == "realestate10k":
        from mine.input_pipelines.realestate10k.realestate10k_dataset import RealEstate10KDataset
        return RealEstate10KDataset(**args)
    if name == "kitti_raw":
        from mine.input_pipelines.kitti_raw.kitti_raw_dataset import KittiRawDataset
        return KittiRawDataset(**args)
    if name == "flowers":
        from mine.input_pipelines.flowers.flowers_dataset import FlowersDataset
        return FlowersDataset(**args)
    if name == "llff":
        from mine.input_pipelines.llff.nerf_dataset import NeRFDataset
        return NeRFDataset(**args, img_pre_downsample_ratio=config["data.img_pre_downsample_ratio"])
    raise ValueError(f"no evaluation pipeline for data.name {name!r} (realestate10k, kitti_raw, flowers, llff)")


def protocol(config, protocols):
    """How eval measures, for metrics.json: dataset, pairs, resolution, planes, crop, rounding, variants."""
    return {
        "dataset": config["data.name"],
        "pairs": list(protocols),
        "img_hw": [config["data.img_h"], config["data.img_w"]],
        "num_planes": config["mpi.num_bins_coarse"],
        "kitti_split": config.get("data.kitti_split", "tulsiani") if config["data.name"] == "kitti_raw" else None,
        "crop_fraction": float(config.get("testing.crop_fraction", 0.0)),
        "uint8_rounding": False,  # the float syntheses are scored, as the original's validation does
        "ssim": SSIM_VARIANT,
        "lpips": LPIPS_VARIANT,
    }


def load_lpips(device, logger):
    """LPIPS-VGG on `device`, or None (with a warning) when its weights file is missing."""
    try:
        return metrics.LPIPS("vgg").to(device)
    except FileNotFoundError as e:
        logger.warning("LPIPS skipped: %s", e)
        return None


@torch.no_grad()
def synthesize_targets(task):
    """Full-resolution target views of the batch set on `task` and their disparity: -> (Bx3xHxW, Bx1xHxW)."""
    endpoints = task.network_forward()
    _, visualization, _ = task.loss_fcn_per_scale(0, endpoints["mpi_all_src_list"][0], endpoints["disparity_all_src"],
                                                  scale_factor=None, is_val=False)
    return visualization["tgt_imgs_syn"].clamp(0.0, 1.0), visualization["tgt_disparity_syn"]


def crop_borders(img, fraction):
    """Central crop removing floor(fraction * size) pixels from each border: Bx3xHxW -> Bx3xH'xW'."""
    dh, dw = int(img.shape[-2] * fraction), int(img.shape[-1] * fraction)
    return img[..., dh:img.shape[-2] - dh, dw:img.shape[-1] - dw]


@torch.no_grad()
def image_metrics(pred, gt, lpips_model):
    """Per-image PSNR, SSIM (MINE) and LPIPS-VGG (None without weights): Bx3xHxW twice -> dict of [B] lists."""
    scores = {"psnr": [psnr(p[None], g[None]).item() for p, g in zip(pred, gt)],
              "ssim": [ssim(p[None], g[None]).item() for p, g in zip(pred, gt)]}
    if lpips_model is None:
        return dict(scores, lpips=[None] * len(pred), lpips_original_range=[None] * len(pred))
    pred_hwc, gt_hwc = pred.permute(0, 2, 3, 1), gt.permute(0, 2, 3, 1)
    scores["lpips"] = lpips_model(pred_hwc, gt_hwc).tolist()
    # The original's run_eval fed [0, 1] images to lpips.LPIPS, which expects [-1, 1]: (x + 1) / 2 reproduces it.
    scores["lpips_original_range"] = lpips_model((pred_hwc + 1) / 2, (gt_hwc + 1) / 2).tolist()
    return scores


def add_sheets(sheet_writer, pred, gt, disparity, psnrs, label, first):
    """One contact sheet per item of a batch (Bx3xHxW, Bx3xHxW, Bx1xHxW, [B] PSNRs), labelled
    `label` and the item's index (the batch's first item is item `first`)."""
    for i, (p, g, d, value) in enumerate(zip(pred, gt, disparity, psnrs)):
        sheet_writer.add(gt=g.permute(1, 2, 0), pred=p.permute(1, 2, 0), depth=d[0], psnr=value,
                         label=f"{label} {first + i}")


def evaluate(task, dataset, lpips_model, batch_size=1, desc="eval", crop_fraction=0.0, sheet_writer=None):
    """Scores every item of `dataset` (borders cropped by crop_fraction), adding its contact sheet to
    sheet_writer (a common.sheets.SheetWriter) when given: -> (means {psnr, ssim, lpips, count}, per-item list)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False, num_workers=0,
                        collate_fn=dataset.collate_fn)
    per_item = []
    for items in tqdm(loader, desc=desc):
        task.set_data(items)
        pred, disparity = (crop_borders(x, crop_fraction) for x in synthesize_targets(task))
        gt = crop_borders(task.tgt_imgs, crop_fraction)
        scores = image_metrics(pred, gt, lpips_model)
        if sheet_writer is not None:
            add_sheets(sheet_writer, pred, gt, disparity, scores["psnr"], desc, len(per_item))
        per_item += [dict(zip(scores, values)) for values in zip(*scores.values())]
    means = {k: (float(np.mean([s[k] for s in per_item])) if per_item and per_item[0][k] is not None else None)
             for k in ("psnr", "ssim", "lpips", "lpips_original_range")}
    return dict(means, count=len(per_item)), per_item


def main(argv=None):
    parser = argparse.ArgumentParser(description="MINE evaluation: PSNR, SSIM, LPIPS-VGG per protocol")
    parser.add_argument("--checkpoint_path", type=str, required=True)
    parser.add_argument("--data_path", type=str, default=None, help="held-out set (default: data.val_set_path)")
    parser.add_argument("--output_dir", type=str, default=None, help="default: <checkpoint folder>/eval")
    parser.add_argument("--protocols", type=str, default=None, help="realestate10k: comma list of 5, 10, random")
    parser.add_argument("--gpus", type=str, default=None)
    parser.add_argument("--extra_config", type=str, default="{}")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seeds the per-bin plane draws (and the LLFF validation points)")
    args = parser.parse_args(argv)

    config = load_params(args.checkpoint_path, args.extra_config)
    # The original validates LLFF on its training scenes (their images_*_val folders).
    default_key = "data.training_set_path" if config["data.name"] == "llff" else "data.val_set_path"
    root = args.data_path or config[default_key]
    if not os.path.exists(root):
        raise FileNotFoundError(f"evaluation data not found: {root} (--data_path or {default_key})")
    protocols = args.protocols.split(",") if args.protocols else default_protocols(config, root)
    output_dir = args.output_dir or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint_path)), "eval")

    logger = logging.getLogger("mine_eval")
    logger.setLevel(logging.INFO)
    logger.handlers = [logging.StreamHandler(sys.stdout)]
    logger.propagate = False
    datasets = {p: make_val_dataset(config, root, p, logger) for p in protocols}  # fails before writing

    config.update({"global_rank": 0, "current_epoch": 0, "tb_writer": None, "data.per_gpu_batch_size": args.batch_size,
                   "training.pretrained_checkpoint_path": args.checkpoint_path, "model.imagenet_pretrained": False})
    device = pick_device(args.gpus)
    task = SynthesisTask(config=config, logger=logger, is_val=True, device=device)
    task.backbone.eval()
    task.decoder.eval()
    lpips_model = load_lpips(device, logger)

    results = {"checkpoint": os.path.abspath(args.checkpoint_path), "data": os.path.abspath(root),
               "dataset": config["data.name"], "img_hw": [config["data.img_h"], config["data.img_w"]],
               "num_planes": config["mpi.num_bins_coarse"], "ssim_variant": SSIM_VARIANT,
               "lpips_variant": LPIPS_VARIANT if lpips_model is not None else None,
               "protocol": protocol(config, datasets), "protocols": {}, "per_item": {}}
    log = Logger(output_dir)
    sheet_writer = sheets.SheetWriter(output_dir, log)
    for pairs, dataset in datasets.items():
        torch.manual_seed(args.seed)
        random.seed(args.seed)  # the LLFF loader samples its validation points with `random`
        means, per_item = evaluate(task, dataset, lpips_model, args.batch_size, desc=pairs,
                                   crop_fraction=float(config.get("testing.crop_fraction", 0.0)), sheet_writer=sheet_writer)
        results["protocols"][pairs] = means
        results["per_item"][pairs] = per_item
        logger.info("%s: %s", pairs, means)
    logger.info("contact sheets: %s", sheet_writer.finish())
    log.close()
    path = os.path.join(output_dir, "metrics.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    logger.info("wrote %s", path)
    return results


if __name__ == "__main__":
    main()
