"""RealEstate10K for MINE: the release's camera files, extracted frames and per-frame sparse points.

Folder layout read (`root` = `data.training_set_path` or `data.val_set_path`):

    root/cameras/<sequence_id>.txt        camera file of the RealEstate10K release: line 1 the video URL,
                                          then one line per frame:
                                          timestamp fx fy cx cy k1 k2 p00 p01 p02 p03 p10 .. p23
                                          (intrinsics normalised by the image size, p the 3x4
                                          world-to-camera matrix)
    root/frames/<sequence_id>/<timestamp>.png (or .jpg)
    root/points/<sequence_id>/<timestamp>.npy   [K, 3] world xyz of the sparse points seen in the frame
      or root/sparse/<sequence_id>/{cameras,images,points3D}.{bin,txt}
                                          a COLMAP model triangulated with the given poses
                                          (`colmap point_triangulator`), image names <timestamp>.png

Frames without an image file are skipped (extract only the ones you need); the sparse points set
the scale of the scale-invariant loss and of the evaluation, so they are required.

Evaluation protocol of Tucker & Snavely (5 frames / 10 frames / random offset): pass the JSON-lines
pairs file (`test_data_jsons/{validation,test}_pairs.json`) as the root; its folder then holds
`frames/` and `points/` (or `sparse/`). `testing.frames_apart` (5, 10 or random) picks the target.
"""

import glob
import json
import os
import random
from collections import defaultdict

import cv2
import numpy as np
import torch
import torch.utils.data as data

from common import colmap
from mine.input_pipelines.llff.nerf_dataset import _collate_fn

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
PAIR_KEYS = {"5": "tgt_img_obj_5_frames", "10": "tgt_img_obj_10_frames", "random": "tgt_img_obj_random"}


def read_image(path):
    """8- or 16-bit image file -> [H, W, 3] RGB array of its stored dtype."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    # OpenCV keeps 16 bits (PIL, behind imageio, reduces 16-bit RGB PNGs to 8 bits).
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot decode image {path}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return np.ascontiguousarray(img[..., 2::-1])  # BGR(A) -> RGB


def load_image(path, img_size):
    """RGB image resized to img_size (W, H): -> ([3, H, W] float32 in [0, 1], (W_orig, H_orig))."""
    img = read_image(path)
    return resize_image(img, img_size), (img.shape[1], img.shape[0])


def resize_image(img, img_size):
    """uint8/uint16 [H, W, 3] RGB array -> [3, H', W'] float32 tensor in [0, 1]."""
    scale = float(np.iinfo(img.dtype).max) if np.issubdtype(img.dtype, np.integer) else 1.0
    img = img.astype(np.float32) / scale
    w, h = img_size
    # Area averaging when shrinking (no aliasing), bicubic when enlarging.
    interp = cv2.INTER_AREA if w <= img.shape[1] and h <= img.shape[0] else cv2.INTER_CUBIC
    img = np.clip(cv2.resize(img, (w, h), interpolation=interp), 0.0, 1.0)
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def normalised_intrinsics_to_K(fx, fy, cx, cy, img_size):
    """Intrinsics normalised by the image size -> [3, 3] float32 K for an image of img_size (W, H)."""
    w, h = img_size
    return np.array([[fx * w, 0, cx * w], [0, fy * h, cy * h], [0, 0, 1]], dtype=np.float32)


def pose_3x4_to_G(pose_12):
    """12 row-major values of a 3x4 world-to-camera matrix -> [4, 4] float32 G_cam_world."""
    G = np.eye(4, dtype=np.float32)
    G[:3, :4] = np.asarray(pose_12, dtype=np.float32).reshape(3, 4)
    return G


def sample_points(xyzs_cam, count, rng, source):
    """`count` random columns of the camera-frame points [3, K] -> (xyzs [3, count], ids [count])."""
    if xyzs_cam.shape[1] < count:
        raise ValueError(
            f"{source}: {xyzs_cam.shape[1]} sparse points in front of the camera, "
            f"data.visible_point_count needs {count}"
        )
    ids = np.array(sorted(rng.sample(range(xyzs_cam.shape[1]), count)), dtype=np.int64)
    return xyzs_cam[:, ids], ids


def placeholder_points(count):
    """[3, count] points at depth 1 on the optical axis: datasets with metric poses (scale 1, no point loss)."""
    return np.tile(np.array([[0.0], [0.0], [1.0]], dtype=np.float32), (1, count))


def view_item(img, K, G_cam_world, xyzs, ids):
    """One view in the LLFF loader's item format (img [3, H, W], K, K_inv, G_cam_world, xyzs [3, N])."""
    return {
        "img": img,
        "K": K,
        "K_inv": np.linalg.inv(K).astype(np.float32),
        "G_cam_world": G_cam_world,
        "xyzs": xyzs.astype(np.float32),
        "xyzs_ids": ids,
        "depths": xyzs[2].astype(np.float32),
    }


def make_pair(src, tgts):
    """(src_item, tgt_items): tgt_items holds lists (one entry per target) with G_src_tgt."""
    tgt_items = defaultdict(list)
    for tgt in tgts:
        tgt_items["img"].append(tgt["img"])
        tgt_items["K"].append(tgt["K"])
        tgt_items["K_inv"].append(tgt["K_inv"])
        tgt_items["G_src_tgt"].append(src["G_cam_world"] @ np.linalg.inv(tgt["G_cam_world"]))
        tgt_items["xyzs"].append(tgt["xyzs"])
        tgt_items["xyzs_ids"].append(tgt["xyzs_ids"])
        tgt_items["depths"].append(tgt["depths"])
    return src, dict(tgt_items)


def read_camera_file(path):
    """RealEstate10K camera file -> {timestamp: (intrinsics [4], pose [12])}."""
    frames = {}
    with open(path) as f:
        lines = [line.split() for line in f.read().splitlines()[1:] if line.strip()]
    for n, values in enumerate(lines):
        if len(values) != 19:
            raise ValueError(
                f"{path}, line {n + 2}: expected 19 values (timestamp fx fy cx cy k1 k2 and a 3x4 "
                f"world-to-camera matrix), got {len(values)}"
            )
        frames[values[0]] = ([float(v) for v in values[1:5]], [float(v) for v in values[7:19]])
    return frames


def find_frame(frames_dir, timestamp):
    """Path of frames_dir/<timestamp>.{png,jpg,jpeg}, or None."""
    for ext in IMAGE_EXTS:
        path = os.path.join(frames_dir, timestamp + ext)
        if os.path.isfile(path):
            return path
    return None


class SparsePoints:
    """World xyz of the sparse points seen in each frame, from points/<seq>/<ts>.npy or sparse/<seq>/."""

    def __init__(self, root):
        self.root = root
        self.models = {}

    def __call__(self, seq, timestamp):
        """[K, 3] float64 world points seen in frame `timestamp` of sequence `seq`."""
        npy = os.path.join(self.root, "points", seq, timestamp + ".npy")
        if os.path.isfile(npy):
            return np.load(npy).reshape(-1, 3)
        model_dir = os.path.join(self.root, "sparse", seq)
        if not os.path.isdir(model_dir):
            raise FileNotFoundError(
                f"no sparse points for frame {timestamp} of sequence {seq}: expected {npy} "
                f"or a COLMAP model in {model_dir}"
            )
        if seq not in self.models:
            _, images, points3D = colmap.read_model(model_dir)
            per_image = colmap.points_per_image(images, points3D)
            self.models[seq] = {os.path.splitext(im.name)[0]: per_image[i] for i, im in images.items()}
        if timestamp not in self.models[seq]:
            raise FileNotFoundError(f"the COLMAP model in {model_dir} has no image named {timestamp}.png")
        return self.models[seq][timestamp]


class PairDataset(data.Dataset):
    """Attributes shared by the RealEstate10K, KITTI and Flowers source/target pair datasets."""

    def __init__(self, config, logger, is_validation, img_size, supervision_count, visible_points_count):
        self.config = config
        self.logger = logger
        self.img_size = tuple(img_size)  # (W, H)
        self.is_validation = is_validation
        self.supervision_count = supervision_count
        self.visible_points_count = visible_points_count
        self.collate_fn = _collate_fn


class RealEstate10KDataset(PairDataset):
    """Source/target frame pairs of RealEstate10K sequences (training) or of an evaluation pairs file."""

    def __init__(self, config, logger, root, is_validation, img_size,
                 supervision_count=1, visible_points_count=256):
        super().__init__(config, logger, is_validation, img_size, supervision_count, visible_points_count)
        self.sample_interval = int(config.get("training.sample_interval", 30))
        if not os.path.exists(root):
            raise FileNotFoundError(f"RealEstate10K root not found: {root}")
        if os.path.isfile(root):
            self.data_dir = os.path.dirname(os.path.abspath(root))
            self.pairs = self._read_pairs(root, str(config.get("testing.frames_apart", "random")))
        else:
            self.data_dir = root
            self.pairs = None
        self.points = SparsePoints(self.data_dir)
        if self.pairs is None:
            self._index_sequences()
        if logger:
            logger.info(f"RealEstate10K {root}: {len(self)} items (is_validation: {is_validation})")

    def _read_pairs(self, path, frames_apart):
        """JSON-lines evaluation pairs -> [(seq, src_obj, tgt_obj)] for the chosen protocol."""
        if frames_apart not in PAIR_KEYS:
            raise ValueError(f"testing.frames_apart must be one of {sorted(PAIR_KEYS)}, got {frames_apart!r}")
        pairs = []
        with open(path) as f:
            for n, line in enumerate(f):
                if not line.strip():
                    continue
                obj = json.loads(line)
                if "src_img_obj" not in obj or PAIR_KEYS[frames_apart] not in obj:
                    raise ValueError(f"{path}, line {n + 1}: needs src_img_obj and {PAIR_KEYS[frames_apart]}")
                pairs.append((obj["sequence_id"], obj["src_img_obj"], obj[PAIR_KEYS[frames_apart]]))
        return pairs

    def _index_sequences(self):
        """Reads every camera file; keeps the frames whose image exists."""
        camera_files = sorted(glob.glob(os.path.join(self.data_dir, "cameras", "*.txt")))
        if not camera_files:
            raise FileNotFoundError(
                f"no camera files in {os.path.join(self.data_dir, 'cameras')} "
                f"(expected cameras/<sequence_id>.txt from the RealEstate10K release)"
            )
        self.sequences = {}  # seq -> [(timestamp, image path, intrinsics, pose)] in time order
        for path in camera_files:
            seq = os.path.splitext(os.path.basename(path))[0]
            frames_dir = os.path.join(self.data_dir, "frames", seq)
            frames = []
            for ts, (intr, pose) in sorted(read_camera_file(path).items(), key=lambda kv: int(kv[0])):
                img_path = find_frame(frames_dir, ts)
                if img_path is not None:
                    frames.append((ts, img_path, intr, pose))
            if len(frames) > self.supervision_count:
                self.sequences[seq] = frames
        if not self.sequences:
            raise FileNotFoundError(
                f"no sequence in {self.data_dir} has {self.supervision_count + 1} frames or more: "
                f"expected frames/<sequence_id>/<timestamp>.png for the timestamps of cameras/*.txt"
            )
        if self.is_validation:
            # One deterministic pair per sequence: its first frame and the frame `frames_apart` later.
            apart = str(self.config.get("testing.frames_apart", "random"))
            self.keys = []
            for seq, frames in sorted(self.sequences.items()):
                offset = int(apart) if apart.isdigit() else random.Random(seq).randint(1, self.sample_interval)
                self.keys.append((seq, 0, min(offset, len(frames) - 1)))
        else:
            self.keys = [(seq, i, None) for seq, frames in sorted(self.sequences.items()) for i in range(len(frames))]

    def __len__(self):
        return len(self.pairs) if self.pairs is not None else len(self.keys)

    def _view(self, seq, timestamp, img_path, intrinsics, pose, rng):
        """Item of one frame: image, K for img_size, G_cam_world and sampled camera-frame points."""
        img, _ = load_image(img_path, self.img_size)
        K = normalised_intrinsics_to_K(*intrinsics, self.img_size)
        G = pose_3x4_to_G(pose)
        xyz_world = self.points(seq, timestamp)
        xyz_cam = G[:3, :3].astype(np.float64) @ xyz_world.T + G[:3, 3:].astype(np.float64)
        xyz_cam = xyz_cam[:, xyz_cam[2] > 1e-6]  # only points in front of the camera have a disparity
        xyzs, ids = sample_points(xyz_cam, self.visible_points_count, rng,
                                  f"sequence {seq}, frame {timestamp}")
        return view_item(img, K, G, xyzs, ids)

    def _json_view(self, seq, obj, rng):
        """Item of a frame described by an evaluation-pairs JSON object."""
        ts = str(obj["frame_ts"])
        frames_dir = os.path.join(self.data_dir, "frames", seq)
        img_path = find_frame(frames_dir, ts)
        if img_path is None:
            raise FileNotFoundError(f"evaluation frame not found: {os.path.join(frames_dir, ts)}.png (or .jpg)")
        return self._view(seq, ts, img_path, obj["camera_intrinsics"], obj["camera_pose"], rng)

    def __getitem__(self, index):
        # Validation is deterministic: its random draws are seeded by the item index.
        rng = random.Random(index) if self.is_validation else random
        if self.pairs is not None:
            seq, src_obj, tgt_obj = self.pairs[index]
            return make_pair(self._json_view(seq, src_obj, rng), [self._json_view(seq, tgt_obj, rng)])
        seq, src_i, tgt_i = self.keys[index]
        frames = self.sequences[seq]
        if tgt_i is None:
            window = [i for i in range(max(0, src_i - self.sample_interval),
                                       min(len(frames), src_i + self.sample_interval + 1)) if i != src_i]
            if len(window) < self.supervision_count:
                window = [i for i in range(len(frames)) if i != src_i]
            tgt_indices = rng.sample(window, self.supervision_count)
        else:
            tgt_indices = [tgt_i]
        src = self._view(seq, *frames[src_i], rng)
        return make_pair(src, [self._view(seq, *frames[i], rng) for i in tgt_indices])
