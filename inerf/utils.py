# Derived from salykovaa/inerf (no licence file in that repository: all rights reserved by default; see THIRD_PARTY_NOTICES.md).
# and yenchenlin/nerf-pytorch (MIT licence, Copyright (c) 2020 bmild; see THIRD_PARTY_NOTICES.md).
"""Configuration, pose perturbations, interest points and regions, and Blender / LLFF loading
(salykovaa/inerf's utils.py, with nerf-pytorch's loaders and the paper's protocol added)."""

import dataclasses
import json
import logging
import os
from typing import Optional

import cv2
import gin
import imageio.v2 as imageio
import numpy as np
import torch

from common import config_types, llff, metrics
from common import images as image_files


@gin.configurable()
@dataclasses.dataclass
class Config:
    """Every option of pose estimation and NeRF training; names as salykovaa's / nerf-pytorch's flags."""

    # Data and outputs.
    data_dir: str = './data/nerf_synthetic/lego'  # The scene folder (Blender or LLFF layout).
    model_name: str = 'lego'  # Scene name: names the checkpoint and the results file.
    output_dir: str = './output'  # Where results/, overlays and videos go.
    ckpt_dir: str = './ckpts'  # <ckpt_dir>/<model_name>.tar or the run folder <ckpt_dir>/<model_name>.
    dataset_type: str = 'blender'  # 'blender' or 'llff'.
    white_bkgd: bool = True  # Composite RGBA images (and renders) on white.
    half_res: bool = False  # Blender: load at half resolution.
    testskip: int = 1  # Blender: keep every testskip-th val/test image.
    factor: int = 8  # LLFF: use images_<factor>.
    llffhold: int = 8  # LLFF: every llffhold-th image is held out.
    no_ndc: bool = False  # LLFF: render in world space instead of NDC.
    lindisp: bool = False  # Sample linearly in disparity.
    spherify: bool = False  # LLFF: 360-degree capture.
    pixel_center: bool = False  # Rays through pixel centres (+0.5); False: corners, as nerf-pytorch.
    near: float = 2.  # Blender near bound (LLFF: 0 in NDC, else from the bounds).
    far: float = 6.  # Blender far bound.

    # The NeRF (nerf-pytorch's names and defaults).
    netdepth: int = 8
    netwidth: int = 256
    netdepth_fine: int = 8
    netwidth_fine: int = 256
    chunk: int = 1024 * 32  # Rays rendered at once.
    netchunk: int = 1024 * 64  # Points sent through the MLP at once.
    N_samples: int = 64  # Coarse samples per ray.
    N_importance: int = 64  # Extra fine samples per ray (0: no fine network).
    perturb: float = 0.  # Stratified jitter when estimating a pose (training uses train_perturb).
    use_viewdirs: bool = True
    i_embed: int = 0  # 0: positional encoding, -1: none.
    multires: int = 10  # Octaves of the point encoding.
    multires_views: int = 4  # Octaves of the view-direction encoding.
    raw_noise_std: float = 0.  # Noise on sigma when estimating a pose.
    bf16: bool = False  # bf16 autocast of the MLPs on a GPU (compositing stays float32); off on the CPU.

    # NeRF training (train_nerf.py; nerf-pytorch's defaults).
    N_rand: int = 1024 * 32 // 8  # Rays per training step.
    lrate_train: float = 5e-4  # nerf-pytorch --lrate.
    lrate_decay: int = 250  # Exponential decay to 0.1x every lrate_decay*1000 steps.
    N_iters: int = 200000  # Training steps.
    train_perturb: float = 1.  # Stratified jitter while training.
    train_raw_noise_std: float = 0.  # Noise on sigma while training (1.0 for LLFF).
    precrop_iters: int = 0  # Steps that sample only the central precrop_frac of each image.
    precrop_frac: float = .5
    i_print: int = 100  # Steps between TensorBoard scalars.
    i_weights: int = 10000  # Steps between checkpoints.
    nan_check: bool = True  # Stop with an error naming the step when the loss is non-finite (ours).
    train_views: tuple = ()  # LLFF self-supervision: indices of the training images (empty: all).
    grad_accum_steps: int = 1  # Micro-batches of N_rand / grad_accum_steps rays per step (same update).
    data_on_device: Optional[bool] = None  # Training rays on the device (None: if they fit in half its free memory).

    # iNeRF pose estimation (paper section IV; salykovaa's names).
    # Observed image of a single estimate (salykovaa's run.py); None runs the protocol. --obs_img_num overrides.
    obs_img_num: Optional[int] = None
    # Blender: the single estimate's image is frame obs_img_num of salykovaa's obs_imgs/transforms.json
    # in obs_imgs_dir (None: <data_dir>/obs_imgs); obs_from_test_split = True takes test image obs_img_num.
    # LLFF: image obs_img_num of the whole scene, as salykovaa's load_llff_data.
    obs_imgs_dir: Optional[str] = None
    obs_from_test_split: bool = False
    dil_iter: int = 3  # Dilation iterations I of the interest regions.
    kernel_size: int = 5  # Dilation kernel size (k x k ones).
    batch_size: int = 2048  # Rays per gradient step.
    lrate: float = 0.01  # Adam learning rate at step 0.
    lrate_decay_rate: float = 0.8  # lr = lrate * rate^(step / lrate_decay_steps).
    lrate_decay_steps: int = 100
    n_steps: int = 300  # Optimisation steps per pose.
    sampling_strategy: str = 'interest_regions'  # 'random', 'interest_points' or 'interest_regions'.
    detector: str = 'sift'  # Interest points: 'sift' or 'orb' (OpenCV).
    unit_axis: bool = False  # camera_transf with |w| = 1 (the paper's screw axis); False: as released.

    # The perturbation protocol.
    perturbation: str = 'random_axis'  # 'random_axis' (paper) or 'euler' (salykovaa's delta_*).
    max_rotation_deg: float = 40.  # Angle uniform in [-max, max] about a uniformly random axis.
    max_translation: float = .2  # Translation uniform in [-max, max] along each world axis (LLFF: 0.1).
    perturbation_pivot: str = 'world'  # 'world': [R | t] @ pose (rotation about the world origin, as
    # every public reimplementation); 'camera': rotation about the camera centre (ours; the paper does not say).
    delta_phi: float = 0.  # 'euler': rotation about z (degrees).
    delta_theta: float = 0.  # 'euler': rotation about y.
    delta_psi: float = 0.  # 'euler': rotation about x.
    delta_t: float = 0.  # 'euler': translation along z.
    n_test_images: int = 5  # Test images per scene.
    n_trials: int = 5  # Perturbed start poses per test image.
    eval_steps: tuple = (0, 50, 100, 200, 300)  # Steps at which errors are recorded.
    rotation_threshold_deg: float = 5.  # Success of the rotation: error below this (reported on its own)...
    translation_threshold: float = .05  # ...and of the translation (5 cm in Blender units); both: ours.
    seed: int = 0  # numpy / torch seed of the protocol.

    # Observation corruptions (salykovaa's robustness options).
    noise: str = 'None'  # 'gaussian', 's_and_p', 'pepper', 'salt', 'poisson' or 'None'.
    sigma: float = .01
    amount: float = .05
    delta_brightness: float = 0.
    fix_brightness: bool = False  # False: as released, the brightness branch divides by 255 twice.

    # Outputs.
    overlay: bool = False  # Write rendered-over-observed overlays of the first trial.
    overlay_every: int = 20  # Steps between overlays.
    video: bool = False  # Also an mp4 of the overlays.


# The accepted values of Config's string options (each checked before anything runs).
CHOICES = {
    'dataset_type': ('blender', 'llff'),
    'sampling_strategy': ('random', 'interest_points', 'interest_regions'),
    'detector': ('sift', 'orb'),
    'perturbation': ('random_axis', 'euler'),
    'perturbation_pivot': ('world', 'camera'),
    'noise': ('None', '', 'gaussian', 's_and_p', 'pepper', 'salt', 'poisson'),
}


def check_config(config):
    """Raises ValueError naming the Config.<field> whose value has the wrong type or is not one of CHOICES."""
    config_types.check_types(config)
    for field, choices in CHOICES.items():
        if getattr(config, field) not in choices:
            raise ValueError(f'Config.{field} = {getattr(config, field)!r}: must be one of {choices}')
    return config


def parse_config(gin_configs=(), gin_bindings=()):
    """Config from gin files and bindings, its types and choices checked (check_config)."""
    gin.parse_config_files_and_bindings(list(gin_configs), list(gin_bindings))
    return check_config(Config())


def rot_psi(angle):
    """Rotation [4, 4] (float64) about x by angle (radians)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]])


def rot_theta(angle):
    """Rotation [4, 4] about y by angle, with the original's sign: [[c, 0, -s], [0, 1, 0], [s, 0, c]]."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, -s, 0], [0, 1, 0, 0], [s, 0, c, 0], [0, 0, 0, 1]])


def rot_phi(angle):
    """Rotation [4, 4] about z by angle."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def trans_t(angle):
    """Translation [4, 4] by `angle` along z (the name of the golden cases' argument)."""
    return np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, angle], [0, 0, 0, 1]], dtype=np.float64)


def euler_perturbation(pose, phi, theta, psi, t, dataset_type='blender'):
    """salykovaa's start pose (degrees), [4, 4]: Blender trans_t(t) rot_phi rot_theta rot_psi @ pose;
    LLFF rot_phi rot_theta rot_psi trans_t(t) @ pose (its load_llff_data translates first)."""
    d = np.pi / 180.
    rotation = rot_phi(phi * d) @ rot_theta(theta * d) @ rot_psi(psi * d)
    if dataset_type == 'llff':
        return rotation @ trans_t(t) @ pose
    return trans_t(t) @ rotation @ pose


def axis_angle_matrix(axis, angle):
    """Rodrigues rotation [3, 3] about the unit axis [3] by angle (radians)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def random_perturbation(pose, rng, max_rotation_deg, max_translation, pivot='world'):
    """The paper's start pose: R about a uniformly random axis by an angle uniform in [-max, max]
    degrees and t uniform in [-max_translation, max_translation]^3, applied as [R | t] @ pose
    (pivot 'world': the rotation also swings the camera centre about the origin) or about the camera
    centre (pivot 'camera': the centre moves by t alone).

    Returns (start_pose [4, 4], angle_deg, translation [3]).
    """
    if pivot not in ('world', 'camera'):
        raise ValueError(f"Config.perturbation_pivot must be 'world' or 'camera', got {pivot!r}")
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(-max_rotation_deg, max_rotation_deg)
    translation = rng.uniform(-max_translation, max_translation, size=3)
    delta = np.eye(4)
    delta[:3, :3] = axis_angle_matrix(axis, np.deg2rad(angle))
    delta[:3, 3] = translation
    if pivot == 'camera':
        delta[:3, 3] += pose[:3, 3] - delta[:3, :3] @ pose[:3, 3]
    return delta @ pose, angle, translation


def rotation_error_deg(R_est, R_gt):
    """Geodesic angle (degrees) between rotations [3, 3]: arccos((tr(R_est^T R_gt) - 1) / 2).

    R_est is first projected onto SO(3) (SVD), so a non-orthonormal estimate is measured by its
    nearest rotation.
    """
    u, _, vt = np.linalg.svd(R_est)
    R_est = u @ np.diag([1., 1., np.linalg.det(u @ vt)]) @ vt
    # clip: rounding can push the cosine just past +-1.
    cos = np.clip((np.trace(R_est.T @ R_gt) - 1.) / 2., -1., 1.)
    return float(np.degrees(np.arccos(cos)))


def translation_error(t_est, t_gt):
    """Euclidean distance between camera centres [3]."""
    return float(np.linalg.norm(np.asarray(t_est) - np.asarray(t_gt)))


def orthonormality_error(R):
    """max |R^T R - I| of a [3, 3] matrix (0 for a rotation)."""
    return float(np.abs(R.T @ R - np.eye(3)).max())


def find_POI(img_rgb, DEBUG=False, detector='sift'):  # noqa: N802,N803 (the original's names)
    """Interest points of a uint8 RGB image [H, W, 3]: integer (x, y) pixels [N, 2], unique, sorted.

    SIFT (default, as salykovaa) or ORB keypoints, truncated to int. The original returns set order;
    the rows here are sorted by x then y so runs repeat exactly.
    """
    img_gray = cv2.cvtColor(np.ascontiguousarray(np.asarray(img_rgb, dtype=np.uint8)), cv2.COLOR_RGB2GRAY)
    if detector == 'sift':
        keypoints = cv2.SIFT_create().detect(img_gray, None)
    elif detector == 'orb':
        # A small edge threshold and patch size: ORB's defaults (31) leave nothing on tiny images.
        keypoints = cv2.ORB_create(nfeatures=1000, edgeThreshold=5, patchSize=9).detect(img_gray, None)
    else:
        raise ValueError(f"detector must be 'sift' or 'orb', got {detector!r}")
    xy = np.array([kp.pt for kp in keypoints], dtype=np.float64).reshape(-1, 2).astype(int)
    xy = np.unique(xy, axis=0)
    if DEBUG:
        logging.info('find_POI: %d interest points (%s)', len(xy), detector)
    return xy


def interest_regions(POI, H, W, kernel_size=5, dil_iter=3):  # noqa: N803
    """Pixels (x, y) [M, 2] of the interest points POI [N, 2] dilated dil_iter times by a k x k kernel."""
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[POI[:, 1], POI[:, 0]] = 1
    mask = cv2.dilate(mask, np.ones((kernel_size, kernel_size), np.uint8), iterations=dil_iter)
    ys, xs = np.nonzero(mask)
    return np.stack([xs, ys], -1)


def img2mse(x, y):
    """Mean squared error of two tensors."""
    return torch.mean((x - y) ** 2)


def mse2psnr(x):
    """PSNR (dB) of an MSE tensor (values in [0, 1])."""
    return metrics.mse_to_psnr(x)


def corrupt_observation(obs_img, config, rng):
    """salykovaa's robustness corruptions of a float image [H, W, 3] in [0, 1]: brightness, noise.

    As released, the brightness branch divides the image by 255 a second time (it turns almost
    black); fix_brightness=True shifts the V channel of the image itself.
    """
    if config.delta_brightness != 0:
        img = obs_img if config.fix_brightness else obs_img / 255.
        hsv = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2HSV)
        value = hsv[..., 2]
        d = config.delta_brightness
        hsv[..., 2] = np.where(value < -d, 0., value + d) if d < 0 else np.where(value > 1 - d, 1., value + d)
        obs_img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    seed = int(rng.integers(2 ** 31))
    modes = {'gaussian': dict(mode='gaussian', var=config.sigma ** 2),
             's_and_p': dict(mode='s&p', amount=config.amount),
             'pepper': dict(mode='pepper', amount=config.amount),
             'salt': dict(mode='salt', amount=config.amount),
             'poisson': dict(mode='poisson')}
    if config.noise in modes:
        # scikit-image is needed only for the noise options.
        import skimage.util

        obs_img = skimage.util.random_noise(obs_img, rng=seed, **modes[config.noise])
    elif config.noise not in ('None', None, ''):
        raise ValueError(f"Config.noise must be one of {sorted(modes)} or 'None', got {config.noise!r}")
    return np.asarray(obs_img, dtype=np.float32)


def read_image(path):
    """An image file as a numpy array (imageio); a file that does not decode raises ImageFileError naming it."""
    with image_files.naming(path):
        return np.asarray(imageio.imread(path))


def _read_json(path):
    """A JSON file, or a clear error naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} is missing: a Blender-layout scene needs transforms_<split>.json')
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f'{path} is not valid JSON (line {error.lineno}, column {error.colno}: '
                             f'{error.msg}); replace or repair the file') from error


def load_blender_data(basedir, half_res=False, testskip=1, white_bkgd=True):
    """Blender scene (transforms_{train,val,test}.json, RGBA PNGs) as nerf-pytorch loads it.

    Returns (imgs [N, H, W, 3] float32 in [0, 1], poses [N, 4, 4] float32 OpenGL c2w,
    [H, W, focal], i_split = [train indices, val indices, test indices]).
    """
    imgs, poses, i_split, count = [], [], [], 0
    meta = None
    for split in ('train', 'val', 'test'):
        meta = _read_json(os.path.join(basedir, f'transforms_{split}.json'))
        frames = meta['frames'][::1 if split == 'train' else max(testskip, 1)]
        for frame in frames:
            path = os.path.normpath(os.path.join(basedir, frame['file_path']))
            path = path if os.path.splitext(path)[1] else path + '.png'
            if not os.path.isfile(path):
                raise FileNotFoundError(f'{path} (named in transforms_{split}.json) is missing')
            imgs.append(read_image(path).astype(np.float32) / 255.)
            poses.append(np.array(frame['transform_matrix'], dtype=np.float32))
        i_split.append(np.arange(count, count + len(frames)))
        count += len(frames)
    imgs, poses = np.stack(imgs, 0), np.stack(poses, 0)
    H, W = imgs.shape[1:3]
    focal = .5 * W / np.tan(.5 * float(meta['camera_angle_x']))
    if half_res:
        H, W, focal = H // 2, W // 2, focal / 2.
        imgs = np.stack([cv2.resize(im, (W, H), interpolation=cv2.INTER_AREA) for im in imgs], 0)
    if imgs.shape[-1] == 4:
        rgb, alpha = imgs[..., :3], imgs[..., 3:]
        imgs = rgb * alpha + (1. - alpha) if white_bkgd else rgb * alpha
    return imgs.astype(np.float32), poses, [H, W, float(focal)], i_split


def load_obs_img(obs_dir, obs_img_num, half_res=False, white_bkgd=True):
    """Observed image `obs_img_num` of salykovaa's obs_imgs/ folder (transforms.json, <file_path>.png).

    As its load_blender: composited on white first, then halved with area averaging, then cut to
    uint8 (truncated) and divided by 255. Returns (img [H, W, 3] float32, pose [4, 4] float64, [H, W, focal]).
    """
    meta = _read_json(os.path.join(obs_dir, 'transforms.json'))
    frames = meta['frames']
    if not 0 <= obs_img_num < len(frames):
        raise ValueError(f'Config.obs_img_num = {obs_img_num}: {obs_dir}/transforms.json has {len(frames)} frames')
    path = os.path.join(obs_dir, frames[obs_img_num]['file_path'] + '.png')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} (frame {obs_img_num} of {obs_dir}/transforms.json) is missing')
    rgba = read_image(path).astype(np.float32) / 255.
    H, W = rgba.shape[:2]
    focal = .5 * W / np.tan(.5 * float(meta['camera_angle_x']))
    rgb = rgba[..., :3] * rgba[..., 3:] + (1. - rgba[..., 3:]) if white_bkgd and rgba.shape[-1] == 4 else rgba[..., :3]
    if half_res:
        H, W, focal = H // 2, W // 2, focal / 2.
        rgb = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA)
    img = np.asarray(rgb * 255, dtype=np.uint8).astype(np.float32) / 255.
    return img, np.array(frames[obs_img_num]['transform_matrix'], dtype=np.float64), [H, W, float(focal)]


def recenter_poses(poses):
    """Poses [N, 3, 5] expressed relative to their average pose (LLFF's recentring)."""
    c2w = poses_avg(poses)
    bottom = np.array([[0, 0, 0, 1.]])
    c2w = np.concatenate([c2w[:3, :4], bottom], 0)
    full = np.concatenate([poses[:, :3, :4], np.tile(bottom[None], [poses.shape[0], 1, 1])], 1)
    out = poses.copy()
    out[:, :3, :4] = (np.linalg.inv(c2w) @ full)[:, :3, :4]
    return out


def _normalize(x):
    return x / np.linalg.norm(x)


def viewmatrix(z, up, pos):
    """Camera [3, 4] at pos looking along -z with the given up."""
    vec2 = _normalize(z)
    vec0 = _normalize(np.cross(up, vec2))
    vec1 = _normalize(np.cross(vec2, vec0))
    return np.stack([vec0, vec1, vec2, pos], 1)


def poses_avg(poses):
    """Average camera [3, 5] (with hwf) of poses [N, 3, 5]."""
    hwf = poses[0, :3, -1:]
    center = poses[:, :3, 3].mean(0)
    return np.concatenate([viewmatrix(poses[:, :3, 2].sum(0), poses[:, :3, 1].sum(0), center), hwf], 1)


def spherify_poses(poses, bds):
    """360-degree LLFF poses [N, 3, 5] centred on the point nearest all optical axes, radius 1."""
    def p34_to_44(p):
        return np.concatenate([p, np.tile(np.eye(4)[-1:][None], [p.shape[0], 1, 1])], 1)

    rays_d, rays_o = poses[:, :3, 2:3], poses[:, :3, 3:4]
    a_i = np.eye(3) - rays_d * np.transpose(rays_d, [0, 2, 1])
    b_i = -a_i @ rays_o
    center = np.squeeze(-np.linalg.inv((np.transpose(a_i, [0, 2, 1]) @ a_i).mean(0)) @ b_i.mean(0))
    up = (poses[:, :3, 3] - center).mean(0)
    vec0 = _normalize(up)
    vec1 = _normalize(np.cross([.1, .2, .3], vec0))
    vec2 = _normalize(np.cross(vec0, vec1))
    c2w = np.stack([vec1, vec2, vec0, center], 1)
    poses_reset = np.linalg.inv(p34_to_44(c2w[None])) @ p34_to_44(poses[:, :3, :4])
    sc = 1. / np.sqrt(np.mean(np.sum(np.square(poses_reset[:, :3, 3]), -1)))
    poses_reset[:, :3, 3] *= sc
    bds = bds * sc
    hwf = np.broadcast_to(poses[0, :3, -1:], poses_reset[:, :3, -1:].shape)
    return np.concatenate([poses_reset[:, :3, :4], hwf], -1), bds


def load_llff_data(basedir, factor=8, recenter=True, bd_factor=.75, spherify=False):
    """LLFF scene (poses_bounds.npy, images_<factor>/) as nerf-pytorch loads it.

    Returns (images [N, H, W, 3] float32 in [0, 1], poses [N, 4, 4] float32 OpenGL c2w, bds [N, 2],
    [H, W, focal]).
    """
    poses_path = os.path.join(basedir, 'poses_bounds.npy')
    poses_arr, bds = llff.load_poses_bounds(poses_path)
    poses = np.asarray(poses_arr, dtype=np.float64).reshape(-1, 3, 5)
    imgdir = os.path.join(basedir, 'images' if factor in (None, 0, 1) else f'images_{factor}')
    if not os.path.isdir(imgdir):
        raise FileNotFoundError(f'{imgdir} is missing: an LLFF scene needs images downsampled by '
                                f'factor={factor} (e.g. python -m data_tools.colmap writes them)')
    files = sorted(f for f in os.listdir(imgdir) if f.lower().endswith(('jpg', 'jpeg', 'png')))
    if len(files) != poses.shape[0]:
        raise ValueError(f'{imgdir}: {len(files)} images but {poses_path} has {poses.shape[0]} rows '
                         f'(one per image, in name order)')
    images = np.stack([read_image(os.path.join(imgdir, f))[..., :3] for f in files], 0)
    images = images.astype(np.float32) / 255.
    poses[:, :2, 4] = images.shape[1:3]
    poses[:, 2, 4] = poses[:, 2, 4] / (factor or 1)
    # LLFF's [down, right, back] -> [right, up, back] (OpenGL).
    poses = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:]], 2)
    bds = np.asarray(bds, dtype=np.float64)
    sc = 1. if bd_factor is None else 1. / (bds.min() * bd_factor)
    poses[:, :3, 3] *= sc
    bds = bds * sc
    if recenter:
        poses = recenter_poses(poses)
    if spherify:
        poses, bds = spherify_poses(poses, bds)
    H, W, focal = poses[0, :3, -1]
    full = np.tile(np.eye(4), [poses.shape[0], 1, 1])
    full[:, :3, :4] = poses[:, :3, :4]
    return images, full.astype(np.float32), bds.astype(np.float32), [int(H), int(W), float(focal)]
