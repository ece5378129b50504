# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""MINE's training and evaluation engine: plane sampling, MPI prediction, rendering, losses at 4 scales."""

import logging
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from common import checkpoints, memory
from common import device as device_utils
from common.logger import progress
from mine.input_pipelines import step_batches
from mine.network.layers import edge_aware_loss, edge_aware_loss_v2, psnr
from mine.network.monodepth2.depth_decoder import DepthDecoder
from mine.network.monodepth2.resnet_encoder import ResnetEncoder
from mine.network.ssim import SSIM
from mine.operations import mpi_rendering, rendering_utils
from mine.operations.homography_sampler import HomographySample
from mine.utils import (
    LATEST_NAME,
    PREVIOUS_NAME,
    AverageMeter,
    _unwrap,
    disparity_normalization_vis,
    get_embedder,
    inverse,
    restore_model,
)

# Datasets with metric poses: no scale calibration and no sparse-point disparity loss.
METRIC_SCALE_DATASETS = ("flowers", "kitti_raw", "dtu")
LOSS_KEYS = ("loss_rgb_src", "loss_ssim_src", "loss_disp_pt3dsrc", "loss_rgb_tgt", "loss_ssim_tgt", "lpips_tgt",
             "psnr_tgt", "loss_disp_pt3dtgt")
LOG_KEYS = ("loss_rgb_src", "loss_ssim_src", "loss_smooth_src", "loss_disp_pt3dsrc", "loss_rgb_tgt", "loss_ssim_tgt",
            "loss_smooth_tgt", "loss_disp_pt3dtgt", "psnr_tgt")
LOG_EVERY = 10  # training steps between two log lines (the original's); the only steps that read losses on the host
PROBE_IMAGES = 2  # images of the memory probe (BatchNorm of the 1/128 bottleneck needs two values per channel)
# The memory probe builds a second task on the meta device: its restore message stays out of training.log.
_PROBE_LOGGER = logging.getLogger("mine.memory_probe")
_PROBE_LOGGER.propagate = False
_PROBE_LOGGER.addHandler(logging.NullHandler())


def check_image_size(H, W):
    """Raises ValueError naming data.img_h / data.img_w unless both are multiples of 128."""
    if H % 128 or W % 128:
        raise ValueError(f"data.img_h x data.img_w = {H}x{W}: both must be multiples of 128 "
                         "(the decoder's extension branch pools the 1/32 features twice)")


def _get_disparity_list(config, B, device=torch.device("cpu")):
    """Source-plane disparities BxS, descending: fixed linspace, or one uniform draw per bin (training)."""
    S_coarse = config["mpi.num_bins_coarse"]
    start, end = config["mpi.disparity_start"], config["mpi.disparity_end"]
    bins = config.get("mpi.disparity_list")
    has_bins = bins is not None and len(bins) == S_coarse + 1
    if config.get("mpi.fix_disparity", False):
        if has_bins:
            return torch.as_tensor(bins[1:], dtype=torch.float32, device=device).unsqueeze(0).repeat(B, 1)
        return torch.linspace(start, end, S_coarse, dtype=torch.float32, device=device).unsqueeze(0).repeat(B, 1)
    if has_bins:
        return rendering_utils.uniformly_sample_disparity_from_bins(batch_size=B, disparity_np=bins, device=device)
    return rendering_utils.uniformly_sample_disparity_from_linspace_bins(
        batch_size=B, num_bins=S_coarse, start=start, end=end, device=device)


def _with_module_prefix(state_dict):
    """Keys prefixed `module.` as the original's DDP models saved them."""
    return {k if k.startswith("module.") else "module." + k: v for k, v in state_dict.items()}


class SynthesisTask:
    """Builds the encoder/decoder/optimizer from a params dict; trains, evaluates and renders novel views."""

    def __init__(self, config, logger, is_val=False, device=None):
        self.config = config
        self.logger = logger or logging.getLogger("mine")
        self.device = torch.device(device or config.get("device") or "cpu")
        self.tb_writer = config.get("tb_writer")
        self.embedder, out_dim = get_embedder(config["model.pos_encoding_multires"])

        H, W = config["data.img_h"], config["data.img_w"]
        check_image_size(H, W)
        self.backbone = ResnetEncoder(num_layers=config.get("model.num_layers", 50),
                                      pretrained=config.get("model.imagenet_pretrained", True)).to(self.device)
        self.decoder = DepthDecoder(num_ch_enc=self.backbone.num_ch_enc, use_alpha=config.get("mpi.use_alpha", False),
                                    num_output_channels=4, scales=range(4), use_skips=True,
                                    embedder=self.embedder, embedder_out_dim=out_dim).to(self.device)
        if config.get("training.compile", False):
            # Module.compile compiles in place: the state-dict keys stay the original's (torch.compile(module)
            # would prefix them with _orig_mod.).
            self.backbone.compile()
            self.decoder.compile()
        self.optimizer = torch.optim.Adam([
            {"params": self.backbone.parameters(), "lr": config["lr.backbone_lr"]},
            {"params": self.decoder.parameters(), "lr": config["lr.decoder_lr"]},
        ], weight_decay=config["lr.weight_decay"])
        self._lpips = None

        # Every rank restores (the original: rank 0 only, which leaves the other ranks' optimizer state empty).
        self.restored = restore_model(config["training.pretrained_checkpoint_path"], self.backbone, self.decoder,
                                      self.optimizer, logger=self.logger)
        self.current_epoch = 0
        self.global_step = 0
        self.start_step = 0  # steps of epoch current_epoch + 1 the restored checkpoint has done

        if not is_val:
            if dist.is_available() and dist.is_initialized():
                if self.device.type == "cuda":  # SyncBatchNorm runs on GPUs only; CPU ranks keep local BN.
                    group = dist.new_group(list(range(dist.get_world_size())))
                    self.backbone = nn.SyncBatchNorm.convert_sync_batchnorm(self.backbone, group)
                    self.decoder = nn.SyncBatchNorm.convert_sync_batchnorm(self.decoder, group)
                device_ids = [self.device] if self.device.type == "cuda" else None
                self.backbone = DDP(self.backbone, device_ids=device_ids, find_unused_parameters=True)
                self.decoder = DDP(self.decoder, device_ids=device_ids, find_unused_parameters=True)
            self.backbone.train()
            self.decoder.train()
            self.lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, config["lr.decay_steps"],
                                                                     gamma=config["lr.decay_gamma"])
            if self.restored is not None and "global_step" in self.restored:
                self.global_step = int(self.restored["global_step"])
                self.current_epoch = int(self.restored["epoch"])
                self.start_step = int(self.restored.get("step_in_epoch", 0))
                self.lr_scheduler.load_state_dict(self.restored["lr_scheduler"])

        self.homography_sampler_list = [HomographySample(H // 2**s, W // 2**s, device=self.device) for s in range(4)]
        # Nearest-neighbour resizing to the loss scales, as the original (nn.Upsample's default mode).
        self.upsample_list = [nn.Identity()] + [nn.Upsample(size=(H // 2**s, W // 2**s)) for s in range(1, 4)]
        self.ssim = SSIM(size_average=True)

        self.train_losses = {k: AverageMeter("train_" + k) for k in ("loss",) + LOSS_KEYS}
        self.val_losses = {k: AverageMeter("val_" + k) for k in LOSS_KEYS}

    @property
    def is_bg_depth_inf(self):
        """The original reads `mpi.render_tgt_rgb_depth` (never set: False); mpi.fix_bg_depth_key reads mpi.is_bg_depth_inf."""
        key = "mpi.is_bg_depth_inf" if self.config.get("mpi.fix_bg_depth_key", False) else "mpi.render_tgt_rgb_depth"
        return self.config.get(key, False)

    def set_data(self, items):
        """Takes a collated (src_items, tgt_items) batch (see NeRFDataset) onto the task's device.

        An optional src_items["disparity"] (BxS, descending) fixes the source planes of this batch in place
        of _get_disparity_list's draw (a port addition: golden whole-step cases, repeatable evaluations).
        """
        src_items, tgt_items = items

        def to(x):
            return torch.as_tensor(x).to(self.device, torch.float32)

        self.src_imgs = to(src_items["img"])  # Bx3xHxW
        self.K_src = to(src_items["K"])  # Bx3x3
        self.K_src_inv = to(src_items["K_inv"])
        self.pt3d_src = to(src_items["xyzs"])  # Bx3xN_pt
        self.disparity_src = to(src_items["disparity"]) if "disparity" in src_items else None  # BxS or None
        if tgt_items["img"].size(1) != 1:
            raise ValueError(f"one target view per source is supported, got {tgt_items['img'].size(1)}")
        self.tgt_imgs = to(tgt_items["img"]).squeeze(1)  # Bx3xHxW
        self.G_src_tgt = to(tgt_items["G_src_tgt"]).squeeze(1)  # Bx4x4
        self.K_tgt = to(tgt_items["K"]).squeeze(1)
        self.K_tgt_inv = to(tgt_items["K_inv"]).squeeze(1)
        self.pt3d_tgt = to(tgt_items["xyzs"]).squeeze(1)  # Bx3xN_pt
        self.G_tgt_src = inverse(self.G_src_tgt)

    def compute_scale_factor(self, disparity_syn_pt3dsrc, pt3d_disp_src):
        """Scale between synthesized and sparse-point disparities, exp(mean log ratio): Bx1xN -> B (paper 3.3.1)."""
        B = pt3d_disp_src.size(0)
        if self.config["data.name"] in METRIC_SCALE_DATASETS:
            return torch.ones(B, dtype=torch.float32, device=pt3d_disp_src.device)
        return torch.exp(torch.mean(torch.log(disparity_syn_pt3dsrc) - torch.log(pt3d_disp_src), dim=2)).squeeze(1)

    def mpi_predictor(self, src_imgs_BCHW, disparity_BS):
        """One encoder pass, one decoder pass over B*S planes: -> [4 x BxSx4xH/2^sxW/2^s] float32.

        training.bf16 runs the two networks under bf16 autocast (CUDA); the MPIs come back as float32
        because the transmittance products over the planes and the warps lose the far planes in bf16.
        """
        with device_utils.autocast(self.device, enabled=self.config.get("training.bf16", False)):
            features = self.backbone(src_imgs_BCHW)
            outputs = self.decoder(list(features), disparity_BS)
        return [outputs[("disp", s)].float() for s in range(4)]

    def _lpips_tgt(self, img_syn, img_gt):
        """Mean LPIPS-VGG of [0, 1] images passed as [-1, 1] ones, as the original calls lpips.LPIPS; NaN without weights."""
        if self._lpips is None:
            from common.metrics import LPIPS

            try:
                self._lpips = LPIPS("vgg").to(self.device)
            except FileNotFoundError as e:
                self.logger.warning("lpips_tgt is NaN: %s", e)
                self._lpips = False
        if self._lpips is False:
            return torch.full((), float("nan"), device=img_syn.device)
        # common LPIPS maps [0, 1] to [-1, 1]; (x + 1) / 2 makes it see x itself, as lpips.LPIPS(x) did.
        return self._lpips(((img_syn + 1) / 2).permute(0, 2, 3, 1), ((img_gt + 1) / 2).permute(0, 2, 3, 1)).mean()

    def loss_fcn_per_scale(self, scale, mpi_all_src, disparity_all_src, scale_factor=None, is_val=False):
        """Losses of one scale (paper eq. 10-13) -> (loss_dict, visualization_dict, scale_factor)."""
        src_imgs_scaled = self.upsample_list[scale](self.src_imgs)
        tgt_imgs_scaled = self.upsample_list[scale](self.tgt_imgs)
        B, _, H_s, W_s = src_imgs_scaled.size()
        if mpi_all_src.shape[3:] != (H_s, W_s):
            raise ValueError(f"MPI {tuple(mpi_all_src.shape)} does not match the {H_s}x{W_s} images of scale {scale}")

        K_src_scaled = self.K_src / (2**scale)
        K_src_scaled[:, 2, 2] = 1
        K_tgt_scaled = self.K_tgt / (2**scale)
        K_tgt_scaled[:, 2, 2] = 1
        K_src_scaled_inv = torch.inverse(K_src_scaled)

        xyz_src_BS3HW = mpi_rendering.get_src_xyz_from_plane_disparity(
            self.homography_sampler_list[scale].meshgrid, disparity_all_src, K_src_scaled_inv)
        mpi_all_rgb_src = mpi_all_src[:, :, 0:3]  # BxSx3xHxW
        mpi_all_sigma_src = mpi_all_src[:, :, 3:]  # BxSx1xHxW
        use_alpha = self.config.get("mpi.use_alpha", False)
        src_imgs_syn, src_depth_syn, blend_weights, weights = mpi_rendering.render(
            mpi_all_rgb_src, mpi_all_sigma_src, xyz_src_BS3HW, use_alpha=use_alpha,
            is_bg_depth_inf=self.is_bg_depth_inf)
        if self.config.get("training.src_rgb_blending", True):
            # Visible plane content comes from the source image itself (paper Sec. 3.2).
            mpi_all_rgb_src = blend_weights * src_imgs_scaled.unsqueeze(1) + (1 - blend_weights) * mpi_all_rgb_src
            src_imgs_syn, src_depth_syn = mpi_rendering.weighted_sum_mpi(
                mpi_all_rgb_src, xyz_src_BS3HW, weights, is_bg_depth_inf=self.is_bg_depth_inf)
        src_disparity_syn = torch.reciprocal(src_depth_syn)

        src_pt3d_disp = torch.reciprocal(self.pt3d_src[:, 2:, :])  # Bx1xN_pt
        src_pt3d_pxpy = torch.matmul(K_src_scaled, self.pt3d_src)
        src_pt3d_pxpy = src_pt3d_pxpy[:, 0:2] / src_pt3d_pxpy[:, 2:]  # Bx2xN_pt
        src_pt3d_disp_syn = rendering_utils.gather_pixel_by_pxpy(src_disparity_syn, src_pt3d_pxpy)  # Bx1xN_pt
        if scale_factor is None:
            scale_factor = self.compute_scale_factor(src_pt3d_disp_syn, src_pt3d_disp)

        rendered = self.render_novel_view(mpi_all_rgb_src, mpi_all_sigma_src, disparity_all_src, self.G_tgt_src,
                                          K_src_scaled_inv, K_tgt_scaled, scale=scale, scale_factor=scale_factor)
        tgt_imgs_syn = rendered["tgt_imgs_syn"]
        tgt_disparity_syn = rendered["tgt_disparity_syn"]
        tgt_mask_syn = rendered["tgt_mask_syn"]

        disp_lambda = 0.0 if self.config["data.name"] in METRIC_SCALE_DATASETS else 1.0
        smoothness_lambda_v1 = self.config.get("loss.smoothness_lambda_v1", 0.5)
        smoothness_lambda_v2 = self.config.get("loss.smoothness_lambda_v2", 1.0)
        gmin = self.config["loss.smoothness_gmin"]
        grad_ratio = self.config.get("loss.smoothness_grad_ratio", 0.1)

        with torch.no_grad():
            loss_rgb_src = torch.mean(torch.abs(src_imgs_syn - src_imgs_scaled))
            loss_ssim_src = 1 - self.ssim(src_imgs_syn, src_imgs_scaled)
            loss_smooth_src = edge_aware_loss(src_imgs_scaled, src_disparity_syn, gmin=gmin, grad_ratio=grad_ratio)

        loss_disp_pt3dsrc = disp_lambda * torch.mean(torch.abs(
            torch.log(src_pt3d_disp_syn / scale_factor.view(B, 1, 1)) - torch.log(src_pt3d_disp)))

        tgt_pt3d_disp = torch.reciprocal(self.pt3d_tgt[:, 2:, :])
        tgt_pt3d_pxpy = torch.matmul(K_tgt_scaled, self.pt3d_tgt)
        tgt_pt3d_pxpy = tgt_pt3d_pxpy[:, 0:2] / tgt_pt3d_pxpy[:, 2:]
        tgt_pt3d_disp_syn = rendering_utils.gather_pixel_by_pxpy(tgt_disparity_syn, tgt_pt3d_pxpy)
        loss_disp_pt3dtgt = disp_lambda * torch.mean(torch.abs(
            torch.log(tgt_pt3d_disp_syn / scale_factor.view(B, 1, 1)) - torch.log(tgt_pt3d_disp)))

        # Target pixels seen by fewer than valid_mask_threshold warped planes lie outside the source view.
        rgb_tgt_valid_mask = torch.ge(tgt_mask_syn, self.config["mpi.valid_mask_threshold"]).to(torch.float32)
        loss_rgb_tgt = (torch.abs(tgt_imgs_syn - tgt_imgs_scaled) * rgb_tgt_valid_mask).mean()

        loss_smooth_tgt = smoothness_lambda_v1 * edge_aware_loss(tgt_imgs_scaled, tgt_disparity_syn, gmin=gmin,
                                                                 grad_ratio=grad_ratio)
        loss_smooth_tgt_v2 = smoothness_lambda_v2 * edge_aware_loss_v2(tgt_imgs_scaled, tgt_disparity_syn)
        loss_smooth_src_v2 = smoothness_lambda_v2 * edge_aware_loss_v2(src_imgs_scaled, src_disparity_syn)
        loss_ssim_tgt = 1 - self.ssim(tgt_imgs_syn, tgt_imgs_scaled)

        with torch.no_grad():
            lpips_tgt = (self._lpips_tgt(tgt_imgs_syn, tgt_imgs_scaled) if is_val and scale == 0
                         else tgt_imgs_syn.new_zeros(()))
            psnr_tgt = psnr(tgt_imgs_syn, tgt_imgs_scaled).mean()

        loss = (loss_disp_pt3dtgt + loss_disp_pt3dsrc + loss_rgb_tgt + loss_ssim_tgt + loss_smooth_tgt
                + loss_smooth_src_v2 + loss_smooth_tgt_v2)
        loss_dict = {"loss": loss, "loss_rgb_src": loss_rgb_src, "loss_ssim_src": loss_ssim_src,
                     "loss_disp_pt3dsrc": loss_disp_pt3dsrc, "loss_smooth_src": loss_smooth_src,
                     "loss_smooth_tgt": loss_smooth_tgt, "loss_smooth_src_v2": loss_smooth_src_v2,
                     "loss_smooth_tgt_v2": loss_smooth_tgt_v2, "loss_rgb_tgt": loss_rgb_tgt,
                     "loss_ssim_tgt": loss_ssim_tgt, "lpips_tgt": lpips_tgt, "psnr_tgt": psnr_tgt,
                     "loss_disp_pt3dtgt": loss_disp_pt3dtgt}
        visualization_dict = {"src_disparity_syn": src_disparity_syn, "tgt_disparity_syn": tgt_disparity_syn,
                              "tgt_imgs_syn": tgt_imgs_syn, "tgt_mask_syn": tgt_mask_syn, "src_imgs_syn": src_imgs_syn}
        return loss_dict, visualization_dict, scale_factor

    def loss_fcn(self, is_val):
        """Total loss over the 4 scales (scale 0 in full; rgb/ssim, disparity and v2 smoothness at 1..3)."""
        endpoints = self.network_forward()
        scale_factor = None
        per_scale = []
        for scale in range(4):
            loss_dict, visualization_dict, scale_factor = self.loss_fcn_per_scale(
                scale, endpoints["mpi_all_src_list"][scale], endpoints["disparity_all_src"], scale_factor,
                is_val=is_val)
            per_scale.append((loss_dict, visualization_dict))
        loss_dict, visualization_dict = per_scale[0]
        for scale_losses, _ in per_scale[1:]:
            if self.config.get("training.use_multi_scale", True):
                loss_dict["loss"] = loss_dict["loss"] + scale_losses["loss_rgb_tgt"] + scale_losses["loss_ssim_tgt"]
            loss_dict["loss"] = (loss_dict["loss"] + scale_losses["loss_disp_pt3dsrc"]
                                 + scale_losses["loss_disp_pt3dtgt"] + scale_losses["loss_smooth_src_v2"]
                                 + scale_losses["loss_smooth_tgt_v2"])
        return loss_dict, visualization_dict

    def _predict_mpis(self, src_imgs, K_src_inv, disparity_coarse_src=None):
        """MPIs of src_imgs at the given (BxS) or sampled plane disparities: -> ([4 x BxSx4xHsxWs], BxS)."""
        if disparity_coarse_src is None:
            disparity_coarse_src = _get_disparity_list(self.config, src_imgs.size(0), device=src_imgs.device)
        xyz_src_BS3HW_coarse = mpi_rendering.get_src_xyz_from_plane_disparity(
            self.homography_sampler_list[0].meshgrid, disparity_coarse_src, K_src_inv)
        return mpi_rendering.predict_mpi_coarse_to_fine(
            self.mpi_predictor, src_imgs, xyz_src_BS3HW_coarse, disparity_coarse_src,
            self.config["mpi.num_bins_fine"], is_bg_depth_inf=self.is_bg_depth_inf)

    def network_forward(self):
        """Predicts the MPIs at the batch's or sampled planes: -> {mpi_all_src_list, disparity_all_src}."""
        mpi_all_src_list, disparity_all_src = self._predict_mpis(self.src_imgs, self.K_src_inv, self.disparity_src)
        return {"mpi_all_src_list": mpi_all_src_list, "disparity_all_src": disparity_all_src}

    def predict_src_mpi(self, src_imgs, K_src_inv):
        """Scale-0 MPI of source images with source-RGB blending: -> rgb BxSx3xHxW, sigma BxSx1xHxW, disparity BxS."""
        src_imgs = src_imgs.to(self.device, torch.float32)
        K_src_inv = K_src_inv.to(self.device, torch.float32)
        mpi_list, disparity = self._predict_mpis(src_imgs, K_src_inv)
        rgb, sigma = mpi_list[0][:, :, 0:3], mpi_list[0][:, :, 3:]
        xyz = mpi_rendering.get_src_xyz_from_plane_disparity(self.homography_sampler_list[0].meshgrid, disparity,
                                                             K_src_inv)
        _, _, blend_weights, _ = mpi_rendering.render(rgb, sigma, xyz, use_alpha=self.config.get("mpi.use_alpha", False),
                                                      is_bg_depth_inf=self.is_bg_depth_inf)
        return blend_weights * src_imgs.unsqueeze(1) + (1 - blend_weights) * rgb, sigma, disparity

    def render_novel_view(self, mpi_all_rgb_src, mpi_all_sigma_src, disparity_all_src, G_tgt_src, K_src_inv, K_tgt,
                          scale=0, scale_factor=None):
        """Target view of a source MPI; the translation is divided by scale_factor (B): -> rgb, disparity, mask."""
        if scale_factor is not None:
            with torch.no_grad():
                G_tgt_src = torch.clone(G_tgt_src)
                G_tgt_src[:, 0:3, 3] = G_tgt_src[:, 0:3, 3] / scale_factor.view(-1, 1)
        sampler = self.homography_sampler_list[scale]
        xyz_src_BS3HW = mpi_rendering.get_src_xyz_from_plane_disparity(sampler.meshgrid, disparity_all_src, K_src_inv)
        xyz_tgt_BS3HW = mpi_rendering.get_tgt_xyz_from_plane_disparity(xyz_src_BS3HW, G_tgt_src)
        tgt_imgs_syn, tgt_depth_syn, tgt_mask_syn = mpi_rendering.render_tgt_rgb_depth(
            sampler, mpi_all_rgb_src, mpi_all_sigma_src, disparity_all_src, xyz_tgt_BS3HW, G_tgt_src, K_src_inv,
            K_tgt, use_alpha=self.config.get("mpi.use_alpha", False), is_bg_depth_inf=self.is_bg_depth_inf)
        return {"tgt_imgs_syn": tgt_imgs_syn, "tgt_disparity_syn": torch.reciprocal(tgt_depth_syn),
                "tgt_mask_syn": tgt_mask_syn}

    def run_eval(self, val_data_loader):
        """Averages the validation losses into self.val_losses (and TensorBoard)."""
        self.logger.info("Start running evaluation on validation set:")
        self.backbone.eval()
        self.decoder.eval()
        for meter in self.val_losses.values():
            meter.reset()
        with torch.no_grad():
            for step, items in enumerate(val_data_loader):
                if (step + 1) % 20 == 0:
                    self.logger.info("    Eval progress: %d/%d", step + 1, len(val_data_loader))
                self.set_data(items)
                loss_dict, visualization_dict = self.loss_fcn(is_val=True)
                self.log_val(step, loss_dict, visualization_dict)
        self.logger.info("Evaluation finished, average losses: ")
        for meter in self.val_losses.values():
            self.logger.info("    %s", meter)
        if self.tb_writer is not None:
            for key, meter in self.val_losses.items():
                self.tb_writer.add_scalar(key + "/val", meter.avg, self.global_step)
        self.backbone.train()
        self.decoder.train()

    def log_val(self, step, loss_dict, visualization_dict):
        """Updates the validation meters and writes the synthesized images and disparities to TensorBoard."""
        B = self.src_imgs.size(0)
        for key, meter in self.val_losses.items():
            meter.update(loss_dict[key].item(), n=B)
        if self.tb_writer is None:
            return
        if self.global_step == self.config["training.eval_interval"]:
            self.tb_writer.add_images("00_src_images", self.src_imgs, step)
            self.tb_writer.add_images("01_gt_tgt_images", self.tgt_imgs, step)
        images = {
            "02_syn_src_images": visualization_dict["src_imgs_syn"],
            "03_syn_src_disparity_map": disparity_normalization_vis(visualization_dict["src_disparity_syn"]),
            "04_syn_tgt_images": visualization_dict["tgt_imgs_syn"],
            "05_syn_tgt_disparity_map": disparity_normalization_vis(visualization_dict["tgt_disparity_syn"]),
        }
        for tag, value in images.items():
            self.tb_writer.add_images(f"{tag}/step_{self.global_step}", value.clamp(0, 1), step)

    def log_training(self, epoch, step, global_step, dataset_length, loss_dict):
        """Logs the losses to training.log and TensorBoard and updates the training meters (one host read)."""
        keys = ("loss",) + LOG_KEYS + tuple(k for k in self.train_losses if k not in LOG_KEYS and k != "loss")
        values = dict(zip(keys, torch.stack([loss_dict[k].detach().float() for k in keys]).tolist()))
        self.logger.info(
            "epoch [%.3d] step [%d/%d] global_step = %d total_loss = %.4f encoder_lr = %.7f\n"
            "        src: rgb = %.4f\n        src: ssim = %.4f\n        src: smooth = %.4f\n"
            "        src: disp_pt3d = %.4f\n        tgt: rgb = %.4f\n        tgt: ssim = %.4f\n"
            "        tgt: smooth = %.4f\n        tgt: disp_pt3d = %.4f\n        tgt: psnr = %.2f",
            epoch, step, dataset_length, global_step, values["loss"], self.optimizer.param_groups[0]["lr"],
            *(values[k] for k in LOG_KEYS))
        for key, meter in self.train_losses.items():
            if self.tb_writer is not None:
                self.tb_writer.add_scalar(key + "/train", values[key], global_step)
            meter.update(values[key])

    def checkpoint_state(self, with_optimizer=True):
        """The original's checkpoint dict (`module.`-prefixed backbone/decoder) + resume fields."""
        state = {"backbone": _with_module_prefix(_unwrap(self.backbone).state_dict()),
                 "decoder": _with_module_prefix(_unwrap(self.decoder).state_dict())}
        if with_optimizer:
            state.update(optimizer=self.optimizer.state_dict(), global_step=self.global_step,
                         epoch=self.current_epoch, lr_scheduler=self.lr_scheduler.state_dict())
        return state

    def save_latest(self, completed_epochs, step_in_epoch=0):
        """Writes local_workspace/checkpoint_latest.pth (model, optimizer, step, epochs done and steps of the
        next one, scheduler); the one it replaces becomes checkpoint_previous.pth, a restart's fallback."""
        state = self.checkpoint_state()
        state.update(epoch=completed_epochs, step_in_epoch=step_in_epoch)
        run_dir = self.config["local_workspace"]
        path = os.path.join(run_dir, LATEST_NAME)
        if os.path.isfile(path):
            os.replace(path, os.path.join(run_dir, PREVIOUS_NAME))
        checkpoints.save_atomic(path, state)
        self.logger.info("Latest checkpoint saved at %s (global step %d)", path, self.global_step)

    def replica_checksums(self):
        """Per-rank float64 sum of every backbone/decoder parameter, gathered: [world_size].

        Parameters only: without SyncBatchNorm (CPU ranks) each rank's BatchNorm running statistics follow
        its own last batch; DDP re-broadcasts rank 0's before every forward and rank 0 saves the checkpoints.
        """
        params = [*_unwrap(self.backbone).parameters(), *_unwrap(self.decoder).parameters()]
        checksum = torch.stack([p.detach().double().sum() for p in params]).sum()
        if not (dist.is_available() and dist.is_initialized()):
            return [checksum.item()]
        gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, checksum.to(self.device))
        return [g.item() for g in gathered]

    def train_step(self, items):
        """One optimisation step on a collated batch (forward, losses, backward, Adam): -> detached loss_dict.

        No host synchronisation: the losses stay on the device until a logging step reads them.
        """
        self.set_data(items)
        loss_dict, _ = self.loss_fcn(is_val=False)
        self.optimizer.zero_grad()
        loss_dict["loss"].backward()
        self.optimizer.step()
        return {k: v.detach() for k, v in loss_dict.items()}

    def check_finite(self, losses, first_global_step):
        """Raises FloatingPointError naming the first step whose loss is not finite; losses: list of 0-dim.

        One host read for all the steps since the last check.
        """
        not_finite = (~torch.isfinite(torch.stack(losses))).tolist()
        if any(not_finite):
            bad = not_finite.index(True)
            raise FloatingPointError(f"loss is {losses[bad].item()} at global step {first_global_step + bad}; "
                                     f"{self._kept_checkpoint()}")

    def check_finite_parameters(self):
        """Raises FloatingPointError naming the step when a parameter is not finite (the last update can
        blow up the weights after a finite loss); one host read."""
        params = [*self.backbone.parameters(), *self.decoder.parameters()]
        if not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            raise FloatingPointError(f"parameters are not finite after global step {self.global_step}; "
                                     f"{self._kept_checkpoint()}")

    def _kept_checkpoint(self):
        """The end of a non-finite error: what is kept, and the setting that trains on."""
        run_dir = self.config.get("local_workspace", ".")
        return (f"stopped before saving, the last good checkpoint in {run_dir} is kept "
                f"(training.nan_check: false trains on, as the original)")

    def _epoch_batches(self, train_batches, epoch, start):
        """Batches start, start + 1, ... of `epoch`; the global RNGs are seeded from (seed, rank, global step)
        before each one, so its draws (targets, points, plane disparities) are a function of the step."""
        order = train_batches.epoch_order(epoch)
        for i in range(start, len(train_batches)):
            step_batches.seed_step(train_batches.seed, train_batches.rank, self.global_step + 1)
            yield train_batches.batch_at(order, i)

    def train_epoch(self, train_batches, val_data_loader, epoch, bar=None, start=0):
        """Steps start + 1 .. len(train_batches) of a pass over the training set (HostBatches or DeviceBatches).

        Logs every 10 steps, writes checkpoint_latest.pth every training.checkpoint_every global steps,
        evaluates per eval_interval. The losses are read on the host only on logging and saving steps, where
        training.nan_check checks them (and, before a save, the parameters), and at the end of the epoch.
        """
        is_main = self.config.get("global_rank", 0) == 0
        nan_check = self.config.get("training.nan_check", True)
        every = self.config.get("training.checkpoint_every", 1000)
        self.backbone.train()
        self.decoder.train()
        self.current_epoch = epoch
        self.config["current_epoch"] = epoch
        for meter in self.train_losses.values():
            meter.reset()

        pending = []  # the loss of every step since the last check, on the device
        for step, items in enumerate(self._epoch_batches(train_batches, epoch, start), start=start + 1):
            self.global_step += 1
            loss_dict = self.train_step(items)
            pending.append(loss_dict["loss"])
            if bar is not None:
                bar.update(1)
            save = bool(every) and self.global_step % every == 0
            evaluate = is_main and (self.global_step == 2000
                                    or self.global_step % self.config["training.eval_interval"] == 0)
            if nan_check and (step % LOG_EVERY == 0 or save or evaluate):
                self.check_finite(pending, self.global_step - len(pending) + 1)
                pending = []
                if save or evaluate:
                    self.check_finite_parameters()
            if step % LOG_EVERY == 0 and is_main:
                if bar is not None:
                    loss, psnr_tgt = torch.stack((loss_dict["loss"], loss_dict["psnr_tgt"])).tolist()
                    bar.set_postfix(loss=f"{loss:.4f}", psnr=f"{psnr_tgt:.2f}")
                self.log_training(epoch, step, self.global_step, len(train_batches), loss_dict)
            if save and is_main:
                self.save_latest(epoch - 1, step)
            if evaluate:
                self.run_eval(val_data_loader)
                path = os.path.join(self.config["local_workspace"], "checkpoint_%012d.pth" % self.global_step)
                checkpoints.save_atomic(path, self.checkpoint_state(with_optimizer=False))
        if nan_check and pending:
            self.check_finite(pending, self.global_step - len(pending) + 1)

    def train(self, train_batches, val_data_loader):
        """training.epochs epochs (resuming after the checkpoint's step); MultiStepLR steps once per epoch."""
        is_main = self.config.get("global_rank", 0) == 0
        epochs = self.config["training.epochs"]
        start = time.time()
        bar = progress(epochs * len(train_batches), initial=self.global_step, disable=not is_main)
        for epoch in range(self.current_epoch + 1, epochs + 1):
            first_step, self.start_step = self.start_step, 0
            self.train_epoch(train_batches, val_data_loader, epoch, bar, start=first_step)
            self.lr_scheduler.step()
            if is_main:
                self.logger.info("Epoch finished, average losses: ")
                for meter in self.train_losses.values():
                    self.logger.info("    %s", meter)
        bar.close()
        checksums = self.replica_checksums()
        if self.config.get("training.nan_check", True):
            self.check_finite_parameters()
        if is_main:
            self.logger.info("Replica parameter checksums (one per rank): %s", checksums)
            self.save_latest(epochs)
            self.logger.info("Training finished: %d steps in %.1f s", self.global_step, time.time() - start)


def probe_batch(B, H, W, num_points, device):
    """A collated batch of B source/target pairs of the right shapes on `device` (values: a valid toy scene).

    Identity-like intrinsics, points 2 units in front of both cameras, a small sideways target move.
    """
    K = torch.tensor([[W / 2.0, 0.0, W / 2.0], [0.0, W / 2.0, H / 2.0], [0.0, 0.0, 1.0]])
    xyzs = torch.stack((torch.zeros(num_points), torch.zeros(num_points), torch.full((num_points,), 2.0)))
    G_src_tgt = torch.eye(4)
    G_src_tgt[0, 3] = 0.05
    src = {"img": torch.full((B, 3, H, W), 0.5), "K": K.expand(B, 3, 3), "K_inv": torch.inverse(K).expand(B, 3, 3),
           "xyzs": xyzs.expand(B, 3, num_points)}
    tgt = {"img": torch.full((B, 1, 3, H, W), 0.5), "K": K.expand(B, 1, 3, 3),
           "K_inv": torch.inverse(K).expand(B, 1, 3, 3), "G_src_tgt": G_src_tgt.expand(B, 1, 4, 4),
           "xyzs": xyzs.expand(B, 1, 3, num_points)}
    return {k: v.to(device) for k, v in src.items()}, {k: v.to(device) for k, v in tgt.items()}


def activation_bytes_per_image(config):
    """Bytes autograd saves for backward per training image: one loss_fcn on a PROBE_IMAGES batch, meta device.

    The probe is the real model and losses at the config's size, planes and points, built and run on the
    meta device (shapes without data): it costs no memory or compute and leaves the training RNG alone.
    """
    # float32 (meta has no autocast): with training.bf16 the prediction is an upper bound.
    probe_config = {**config, "training.pretrained_checkpoint_path": None, "model.imagenet_pretrained": False,
                    "training.compile": False, "training.bf16": False}
    with torch.device("meta"):
        task = SynthesisTask(probe_config, _PROBE_LOGGER, is_val=True, device="meta")
    task.set_data(probe_batch(PROBE_IMAGES, config["data.img_h"], config["data.img_w"],
                              config["data.visible_point_count"], "meta"))
    _, saved = memory.saved_bytes(lambda: task.loss_fcn(is_val=False))
    return saved / PROBE_IMAGES


def describe_memory(config, parameters):
    """The start-up line: predicted peak memory of one process's training step at data.per_gpu_batch_size."""
    parameters = list(parameters)
    per_image = activation_bytes_per_image(config)
    batch = config["data.per_gpu_batch_size"]
    total = memory.predicted_peak_bytes(parameters, per_image, batch)
    return (f"predicted peak memory {total / memory.GIB:.2f} GiB per process: {batch} images "
            f"(data.per_gpu_batch_size) x {per_image / 2**20:.1f} MiB per image (saved for backward at "
            f"{config['data.img_h']}x{config['data.img_w']}, {config['mpi.num_bins_coarse']} planes, measured on "
            f"the fly on a {PROBE_IMAGES}-image probe on the meta device) + "
            f"{memory.state_bytes(parameters) / memory.GIB:.2f} GiB of parameters, gradients and Adam moments")
