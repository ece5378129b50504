# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""PixelNeRFNet: a NeRF MLP conditioned on pixel-aligned features of the source views."""

import os
import shutil
import warnings

import torch

from common import checkpoints
from inerf.src.model.code import PositionalEncoding
from inerf.src.model.encoder import ImageEncoder
from inerf.src.model.model_util import make_encoder, make_mlp
from inerf.src.util import repeat_interleave


class PixelNeRFNet(torch.nn.Module):
    """pixelNeRF: encode(source images, poses, focal) once, then forward(xyz) -> (rgb, sigma).

    conf is the HOCON `model` block; state-dict names are the release's (encoder.model.*,
    mlp_coarse.*, mlp_fine.*), so its `pixel_nerf_latest` checkpoints load unchanged.
    """

    def __init__(self, conf, stop_encoder_grad=False):
        super().__init__()
        self.encoder = make_encoder(conf["encoder"])
        self.use_encoder = conf.get_bool("use_encoder", True)
        self.use_xyz = conf.get_bool("use_xyz", False)
        assert self.use_encoder or self.use_xyz  # the MLP needs some input
        # z relative to the source camera's rotation only (objects centred at the origin).
        self.normalize_z = conf.get_bool("normalize_z", True)
        self.stop_encoder_grad = stop_encoder_grad
        self.use_code = conf.get_bool("use_code", False)
        self.use_code_viewdirs = conf.get_bool("use_code_viewdirs", True)
        self.use_viewdirs = conf.get_bool("use_viewdirs", False)
        self.use_global_encoder = conf.get_bool("use_global_encoder", False)

        d_latent = self.encoder.latent_size if self.use_encoder else 0
        d_in = 3 if self.use_xyz else 1
        if self.use_viewdirs and self.use_code_viewdirs:
            d_in += 3
        if self.use_code and d_in > 0:
            self.code = PositionalEncoding.from_conf(conf["code"], d_in=d_in)
            d_in = self.code.d_out
        if self.use_viewdirs and not self.use_code_viewdirs:
            d_in += 3
        if self.use_global_encoder:
            self.global_encoder = ImageEncoder.from_conf(conf["global_encoder"])
            self.global_latent_size = self.global_encoder.latent_size
            d_latent += self.global_latent_size

        d_out = 4
        self.latent_size = self.encoder.latent_size
        self.mlp_coarse = make_mlp(conf["mlp_coarse"], d_in, d_latent, d_out=d_out)
        self.mlp_fine = make_mlp(conf["mlp_fine"], d_in, d_latent, d_out=d_out, allow_empty=True)
        # World -> camera (3, 4) of each source view.
        self.register_buffer("poses", torch.empty(1, 3, 4), persistent=False)
        self.register_buffer("image_shape", torch.empty(2), persistent=False)
        self.d_in = d_in
        self.d_out = d_out
        self.d_latent = d_latent
        self.register_buffer("focal", torch.empty(1, 2), persistent=False)
        self.register_buffer("c", torch.empty(1, 2), persistent=False)
        self.num_objs = 0
        self.num_views_per_obj = 1

    def encode(self, images, poses, focal, z_bounds=None, c=None):
        """Encodes source views: images (NS, 3, H, W) or (SB, NS, 3, H, W), c2w poses (., 4, 4).

        focal: () shared, (N) one per object (fx = fy), or (N, 2) [fx, fy]; c alike, default the
        image centre. z_bounds: ignored.
        """
        self.num_objs = images.size(0)
        if len(images.shape) == 5:
            assert len(poses.shape) == 4
            assert poses.size(1) == images.size(1)
            self.num_views_per_obj = images.size(1)
            images = images.reshape(-1, *images.shape[2:])
            poses = poses.reshape(-1, 4, 4)
        else:
            self.num_views_per_obj = 1

        self.encoder(images)
        rot = poses[:, :3, :3].transpose(1, 2)
        trans = -torch.bmm(rot, poses[:, :3, 3:])
        self.poses = torch.cat((rot, trans), dim=-1)

        self.image_shape[0] = images.shape[-1]
        self.image_shape[1] = images.shape[-2]

        if len(focal.shape) == 0:
            focal = focal[None, None].repeat((1, 2))
        elif len(focal.shape) == 1:
            focal = focal.unsqueeze(-1).repeat((1, 2))
        else:
            focal = focal.clone()
        self.focal = focal.float()
        self.focal[..., 1] *= -1.0  # image y points down, camera y up

        if c is None:
            c = (self.image_shape * 0.5).unsqueeze(0)
        elif len(c.shape) == 0:
            c = c[None, None].repeat((1, 2))
        elif len(c.shape) == 1:
            c = c.unsqueeze(-1).repeat((1, 2))
        self.c = c

        if self.use_global_encoder:
            self.global_encoder(images)

    def forward(self, xyz, coarse=True, viewdirs=None, far=False):
        """xyz (SB, B, 3) world points [, viewdirs (SB, B, 3)] -> (SB, B, 4) sigmoid rgb, relu sigma."""
        SB, B, _ = xyz.shape
        NS = self.num_views_per_obj

        # Query points in each source camera's frame.
        xyz = repeat_interleave(xyz, NS)  # (SB*NS, B, 3)
        xyz_rot = torch.matmul(self.poses[:, None, :3, :3], xyz.unsqueeze(-1))[..., 0]
        xyz = xyz_rot + self.poses[:, None, :3, 3]

        if self.d_in > 0:
            if self.use_xyz:
                z_feature = (xyz_rot if self.normalize_z else xyz).reshape(-1, 3)
            else:
                z_feature = -(xyz_rot if self.normalize_z else xyz)[..., 2].reshape(-1, 1)
            if self.use_code and not self.use_code_viewdirs:
                z_feature = self.code(z_feature)
            if self.use_viewdirs:
                assert viewdirs is not None
                viewdirs = repeat_interleave(viewdirs.reshape(SB, B, 3, 1), NS)
                viewdirs = torch.matmul(self.poses[:, None, :3, :3], viewdirs).reshape(-1, 3)
                z_feature = torch.cat((z_feature, viewdirs), dim=1)
            if self.use_code and self.use_code_viewdirs:
                z_feature = self.code(z_feature)
            mlp_input = z_feature

        if self.use_encoder:
            # Pinhole projection into each source view (pixels, x right, y down).
            uv = -xyz[:, :, :2] / xyz[:, :, 2:]
            uv = uv * repeat_interleave(self.focal.unsqueeze(1), NS if self.focal.shape[0] > 1 else 1)
            uv = uv + repeat_interleave(self.c.unsqueeze(1), NS if self.c.shape[0] > 1 else 1)
            latent = self.encoder.index(uv, None, self.image_shape)  # (SB*NS, L, B)
            if self.stop_encoder_grad:
                latent = latent.detach()
            latent = latent.transpose(1, 2).reshape(-1, self.latent_size)
            mlp_input = latent if self.d_in == 0 else torch.cat((latent, z_feature), dim=-1)

        if self.use_global_encoder:
            global_latent = self.global_encoder.latent
            assert mlp_input.shape[0] % global_latent.shape[0] == 0
            global_latent = repeat_interleave(global_latent, mlp_input.shape[0] // global_latent.shape[0])
            mlp_input = torch.cat((global_latent, mlp_input), dim=-1)

        mlp = self.mlp_coarse if coarse or self.mlp_fine is None else self.mlp_fine
        mlp_output = mlp(mlp_input, combine_inner_dims=(self.num_views_per_obj, B))
        mlp_output = mlp_output.reshape(-1, B, self.d_out)
        output = torch.cat((torch.sigmoid(mlp_output[..., :3]), torch.relu(mlp_output[..., 3:4])), dim=-1)
        return output.reshape(SB, B, -1)

    def load_weights(self, args, opt_init=False, strict=True, device=None):
        """Loads <checkpoints_path>/<name>/pixel_nerf_latest (pixel_nerf_init without --resume).

        A missing file only warns, as in the release (the model stays freshly initialised).
        """
        if opt_init and not args.resume:
            return
        ckpt_name = "pixel_nerf_init" if opt_init or not args.resume else "pixel_nerf_latest"
        model_path = "%s/%s/%s" % (args.checkpoints_path, args.name, ckpt_name)
        if device is None:
            device = self.poses.device
        if os.path.exists(model_path):
            print("Load", model_path)
            try:
                state = checkpoints.load_checkpoint(model_path, map_location=device)
            except Exception as error:  # torch.load raises UnpicklingError, RuntimeError, EOFError, ...
                raise ValueError(f"{model_path} is not a readable pixelNeRF checkpoint "
                                 f"({type(error).__name__}: {str(error).splitlines()[0]}); "
                                 "replace it, or move it away to start from a fresh model") from error
            self.load_state_dict(state, strict=strict)
        elif not opt_init:
            warnings.warn(
                f"WARNING: {model_path} does not exist, not loaded!! The model keeps its fresh "
                "initialisation. To use a pretrained model put it there; to continue training pass --resume.")
        return self

    def save_weights(self, args, opt_init=False):
        """Saves the state dict to <checkpoints_path>/<name>/pixel_nerf_latest (or _init), backing up the old one."""
        ckpt_name = "pixel_nerf_init" if opt_init else "pixel_nerf_latest"
        backup_name = "pixel_nerf_init_backup" if opt_init else "pixel_nerf_backup"
        ckpt_path = os.path.join(args.checkpoints_path, args.name, ckpt_name)
        if os.path.exists(ckpt_path):
            shutil.copyfile(ckpt_path, os.path.join(args.checkpoints_path, args.name, backup_name))
        checkpoints.save_atomic(ckpt_path, self.state_dict())
        return self
