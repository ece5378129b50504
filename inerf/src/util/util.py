# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF's util.py: camera rays, orbit poses, quaternions, multi-view helpers, conv padding."""

import functools
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from common.device import resolve_device


def image_float_to_uint8(img):
    """Float image (any range) -> uint8 after min-max normalisation."""
    vmin = np.min(img)
    vmax = np.max(img)
    if vmax - vmin < 1e-10:  # flat image: avoid dividing by zero
        vmax += 1e-10
    img = (img - vmin) / (vmax - vmin)
    return (img * 255.0).astype(np.uint8)


def cmap(img, color_map=cv2.COLORMAP_HOT):
    """Float image (H, W) -> colour-mapped uint8 (H, W, 3), OpenCV's HOT map by default."""
    return cv2.applyColorMap(image_float_to_uint8(img), color_map)


def batched_index_select_nd(t, inds):
    """t (batch, n, ...), inds (batch, k) -> (batch, k, ...): gather on dim 1."""
    return t.gather(1, inds[(...,) + (None,) * (len(t.shape) - 2)].expand(-1, -1, *t.shape[2:]))


def batched_index_select_nd_last(t, inds):
    """t (batch..., n, m), inds (batch..., k) -> (batch..., n, k): gather on the last dim."""
    dummy = inds.unsqueeze(-2).expand(*inds.shape[:-1], t.size(-2), inds.size(-1))
    return t.gather(-1, dummy)


def repeat_interleave(input, repeats, dim=0):
    """input (N, ...) -> (N * repeats, ...), each row repeated `repeats` times in place (dim 0 only)."""
    output = input.unsqueeze(1).expand(-1, repeats, *input.shape[1:])
    return output.reshape(-1, *input.shape[1:])


def _pil_to_tensor(image):
    """PIL image or uint8 array (H, W[, C]) -> float tensor (C, H, W) in [0, 1]."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def resize_shorter_side(image, size):
    """PIL image with its shorter side resized to `size` (bilinear), as torchvision's Resize(int)."""
    w, h = image.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    return image.resize((new_w, new_h), Image.BILINEAR)


def get_image_to_tensor_balanced(image_size=0):
    """Transform PIL image -> (3, H, W) tensor in [-1, 1] (optional shorter-side resize first)."""

    def transform(image):
        if image_size > 0:
            image = resize_shorter_side(image, image_size)
        return _pil_to_tensor(image) * 2.0 - 1.0

    return transform


def get_mask_to_tensor():
    """Transform PIL mask -> (1, H, W) tensor in [0, 1]."""
    return _pil_to_tensor


def homogeneous(points):
    """points (..., 3) -> (..., 4) with a trailing 1."""
    return F.pad(points, (0, 1), "constant", 1.0)


def gen_grid(*args, ij_indexing=False):
    """Grid of linspace(lo, hi, sz) per (lo, hi, sz) argument -> (prod sz, len(args))."""
    axes = [torch.linspace(lo, hi, sz, dtype=torch.float32) for lo, hi, sz in args]
    grid = torch.meshgrid(*axes, indexing="ij" if ij_indexing else "xy")
    return torch.stack(grid).reshape(len(args), -1).T


def unproj_map(width, height, f, c=None, device="cpu"):
    """Unit camera-space ray per pixel -> (height, width, 3); x right, y up, looking down -z.

    f: float, 0-d, (1,) or (2,) [fx, fy]; c: None (image centre) or [cx, cy].
    """
    if c is None:
        c = [width * 0.5, height * 0.5]
    else:
        c = c.squeeze()
    if isinstance(f, float):
        f = [f, f]
    elif len(f.shape) == 0:
        f = f[None].expand(2)
    elif len(f.shape) == 1:
        f = f.expand(2)
    # Built on device with f and c as (0-dim) tensors or numbers: float(f[0]) of a device tensor
    # would wait for the device on every call.
    Y, X = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device) - c[1],
        torch.arange(width, dtype=torch.float32, device=device) - c[0],
        indexing="ij",
    )
    X = X / f[0]
    Y = Y / f[1]
    unproj = torch.stack((X, -Y, -torch.ones_like(X)), dim=-1)
    return unproj / torch.norm(unproj, dim=-1, keepdim=True)


def coord_from_blender(dtype=torch.float32, device="cpu"):
    """(4, 4) Blender (x right, y in, z up) -> standard (x right, y up, z out) transform."""
    return torch.tensor(
        [[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=dtype, device=device)


def coord_to_blender(dtype=torch.float32, device="cpu"):
    """(4, 4) standard (x right, y up, z out) -> Blender (x right, y in, z up) transform."""
    return torch.tensor(
        [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=dtype, device=device)


def look_at(origin, target, world_up=np.array([0, 1, 0], dtype=np.float32)):
    """(4, 4) numpy camera-to-world matrix of a camera at origin looking at target (-z forward)."""
    back = origin - target
    back = back / np.linalg.norm(back)
    right = np.cross(world_up, back)
    right = right / np.linalg.norm(right)
    up = np.cross(back, right)
    cam_to_world = np.eye(4, dtype=np.float32)
    cam_to_world[:3, 0] = right
    cam_to_world[:3, 1] = up
    cam_to_world[:3, 2] = back
    cam_to_world[:3, 3] = origin
    return cam_to_world


def get_cuda(gpu_id):
    """torch.device cuda:<gpu_id> when CUDA is available (ValueError naming --gpu_id if that GPU does
    not exist), else the CPU (as released)."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return resolve_device("cuda:%d" % gpu_id, setting="--gpu_id")


def masked_sample(masks, num_pix, prop_inside, thresh=0.5):
    """(num_pix, 3) [image, y, x] indices, a share prop_inside of them drawn where masks >= thresh."""
    num_inside = int(num_pix * prop_inside + 0.5)
    num_outside = num_pix - num_inside
    inside = (masks >= thresh).nonzero(as_tuple=False)
    outside = (masks < thresh).nonzero(as_tuple=False)
    pix_inside = inside[torch.randint(0, inside.shape[0], (num_inside,))]
    pix_outside = outside[torch.randint(0, outside.shape[0], (num_outside,))]
    return torch.cat((pix_inside, pix_outside))


def bbox_sample(bboxes, num_pix):
    """bboxes (NV, 4) [xmin, ymin, xmax, ymax] -> (num_pix, 3) [image, y, x] drawn inside them."""
    device = bboxes.device
    image_ids = torch.randint(0, bboxes.shape[0], (num_pix,), device=device)
    pix_bboxes = bboxes[image_ids]
    x = (torch.rand(num_pix, device=device) * (pix_bboxes[:, 2] + 1 - pix_bboxes[:, 0]) + pix_bboxes[:, 0]).long()
    y = (torch.rand(num_pix, device=device) * (pix_bboxes[:, 3] + 1 - pix_bboxes[:, 1]) + pix_bboxes[:, 1]).long()
    return torch.stack((image_ids, y, x), dim=-1)


def gen_rays(poses, width, height, focal, z_near, z_far, c=None, ndc=False):
    """poses (B, 4, 4) camera-to-world -> rays (B, H, W, 8): origin, unit direction, near, far.

    ndc=True fails as in the release, whose NDC branch calls a function it never defines.
    """
    if ndc:
        raise NotImplementedError(
            "gen_rays(ndc=True): the released pixelNeRF calls an undefined ndc_rays here "
            "(NameError); NDC rays are not supported")
    num_images = poses.shape[0]
    device = poses.device
    cam_unproj_map = unproj_map(width, height, focal.squeeze(), c=c, device=device)
    cam_centers = poses[:, None, None, :3, 3].expand(-1, height, width, -1)
    cam_raydir = torch.matmul(poses[:, None, None, :3, :3], cam_unproj_map[None, ..., None])[..., 0]
    cam_nears = torch.tensor(z_near, device=device).view(1, 1, 1, 1).expand(num_images, height, width, -1)
    cam_fars = torch.tensor(z_far, device=device).view(1, 1, 1, 1).expand(num_images, height, width, -1)
    return torch.cat((cam_centers, cam_raydir, cam_nears, cam_fars), dim=-1)


def trans_t(t):
    """(4, 4) translation by t along z."""
    return torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, t], [0, 0, 0, 1]], dtype=torch.float32)


def rot_phi(phi):
    """(4, 4) rotation by phi (radians) about x."""
    c, s = np.cos(phi), np.sin(phi)
    return torch.tensor([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]], dtype=torch.float32)


def rot_theta(th):
    """(4, 4) rotation by th (radians) about y (NeRF's sign convention)."""
    c, s = np.cos(th), np.sin(th)
    return torch.tensor([[c, 0, -s, 0], [0, 1, 0, 0], [s, 0, c, 0], [0, 0, 0, 1]], dtype=torch.float32)


def pose_spherical(theta, phi, radius):
    """(4, 4) NeRF orbit camera-to-world pose: azimuth theta, elevation phi (degrees), radius."""
    c2w = trans_t(radius)
    c2w = rot_phi(phi / 180.0 * np.pi) @ c2w
    c2w = rot_theta(theta / 180.0 * np.pi) @ c2w
    flip = torch.tensor([[-1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.float32)
    return flip @ c2w


def count_parameters(model):
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def get_norm_layer(norm_type="instance", group_norm_groups=32):
    """Norm layer constructor for batch | instance | group | none (None)."""
    if norm_type == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm_type == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm_type == "group":
        return functools.partial(nn.GroupNorm, group_norm_groups)
    if norm_type == "none":
        return None
    raise NotImplementedError("normalization layer [%s] is not found" % norm_type)


def make_conv_2d(dim_in, dim_out, padding_type="reflect", norm_layer=None, activation=None,
                 kernel_size=3, use_bias=False, stride=1, no_pad=False, zero_init=False):
    """nn.Sequential(pad, conv, [norm], [activation]) with 'same' padding at stride 1."""
    conv_block = []
    amt = kernel_size // 2
    if stride > 1 and not no_pad:
        raise NotImplementedError("Padding with stride > 1 not supported, use same_pad_conv2d")
    if amt > 0 and not no_pad:
        pads = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "zero": nn.ZeroPad2d}
        if padding_type not in pads:
            raise NotImplementedError("padding [%s] is not implemented" % padding_type)
        conv_block.append(pads[padding_type](amt))
    conv_block.append(nn.Conv2d(dim_in, dim_out, kernel_size=kernel_size, bias=use_bias, stride=stride))
    if zero_init:
        nn.init.zeros_(conv_block[-1].weight)
    if norm_layer is not None:
        conv_block.append(norm_layer(dim_out))
    if activation is not None:
        conv_block.append(activation)
    return nn.Sequential(*conv_block)


def calc_same_pad_conv2d(t_shape, kernel_size=3, stride=1):
    """(left, right, top, bottom) padding giving TensorFlow-style 'SAME' output for a conv."""
    in_height, in_width = t_shape[-2:]
    out_height = math.ceil(in_height / stride)
    out_width = math.ceil(in_width / stride)
    pad_along_height = max((out_height - 1) * stride + kernel_size - in_height, 0)
    pad_along_width = max((out_width - 1) * stride + kernel_size - in_width, 0)
    pad_top = pad_along_height // 2
    pad_left = pad_along_width // 2
    return pad_left, pad_along_width - pad_left, pad_top, pad_along_height - pad_top


def _kernel_and_stride(layer, kernel_size, stride):
    """(kernel_size, stride) of a conv layer (or the first layer of a Sequential), else the given."""
    if layer is None:
        return kernel_size, stride
    if isinstance(layer, nn.Sequential):
        layer = next(layer.children())
    return layer.kernel_size[0], layer.stride[0]


def same_pad_conv2d(t, padding_type="reflect", kernel_size=3, stride=1, layer=None):
    """t (B, C, H, W) padded for a 'SAME' conv of kernel_size/stride (or those of `layer`)."""
    kernel_size, stride = _kernel_and_stride(layer, kernel_size, stride)
    return F.pad(t, calc_same_pad_conv2d(t.shape, kernel_size, stride), mode=padding_type)


def same_unpad_deconv2d(t, kernel_size=3, stride=1, layer=None):
    """Crops a transposed conv output (B, C, H, W) back to the 'SAME' size."""
    kernel_size, stride = _kernel_and_stride(layer, kernel_size, stride)
    h_scaled = (t.shape[-2] - 1) * stride
    w_scaled = (t.shape[-1] - 1) * stride
    pad_left, pad_right, pad_top, pad_bottom = calc_same_pad_conv2d(
        (h_scaled, w_scaled), kernel_size, stride)
    return t[..., pad_top:t.shape[-2] - pad_bottom, pad_left:t.shape[-1] - pad_right]


def combine_interleaved(t, inner_dims=(1,), agg_type="average"):
    """t (N * inner_dims[0] * ..., ...) -> (N, inner_dims[1:]..., ...) averaged or maxed over dim 1."""
    if len(inner_dims) == 1 and inner_dims[0] == 1:
        return t
    t = t.reshape(-1, *inner_dims, *t.shape[1:])
    if agg_type == "average":
        return torch.mean(t, dim=1)
    if agg_type == "max":
        return torch.max(t, dim=1)[0]
    raise NotImplementedError("Unsupported combine type " + agg_type)


def psnr(pred, target):
    """PSNR in dB (a float) of two broadcastable images in [0, 1]."""
    mse = ((pred - target) ** 2).mean()
    return -10 * math.log10(mse)


def quat_to_rot(q):
    """q (B, 4) (w, x, y, z), normalised here -> rotation matrices (B, 3, 3)."""
    q = F.normalize(q, dim=1)
    qr, qi, qj, qk = q.unbind(1)
    rows = [
        1 - 2 * (qj ** 2 + qk ** 2), 2 * (qj * qi - qk * qr), 2 * (qi * qk + qr * qj),
        2 * (qj * qi + qk * qr), 1 - 2 * (qi ** 2 + qk ** 2), 2 * (qj * qk - qi * qr),
        2 * (qk * qi - qj * qr), 2 * (qj * qk + qi * qr), 1 - 2 * (qi ** 2 + qj ** 2),
    ]
    return torch.stack(rows, dim=1).reshape(-1, 3, 3)


def rot_to_quat(R):
    """R (B, 3, 3) -> q (B, 4) (w, x, y, z); like the release, only valid for trace > -1."""
    w = torch.sqrt(1.0 + R[:, 0, 0] + R[:, 1, 1] + R[:, 2, 2]) / 2
    x = (R[:, 2, 1] - R[:, 1, 2]) / (4 * w)
    y = (R[:, 0, 2] - R[:, 2, 0]) / (4 * w)
    z = (R[:, 1, 0] - R[:, 0, 1]) / (4 * w)
    return torch.stack((w, x, y, z), dim=1)


def get_module(net):
    """net.module for a DataParallel wrapper, else net."""
    return net.module if isinstance(net, torch.nn.DataParallel) else net
