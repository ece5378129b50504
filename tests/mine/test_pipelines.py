"""RealEstate10K, KITTI raw and Flowers pipelines on tiny layouts written here from synthetic renders."""

import dataclasses
import json
import os
import shutil

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_tools.synth import build_scene, render_view
from data_tools.synth.render import to_uint8
from mine.input_pipelines.flowers.flowers_dataset import (
    DEFAULT_CAM_PARAMS,
    FlowersDataset,
    read_cam_params,
)
from mine.input_pipelines.kitti_raw import kitti_raw_dataset
from mine.input_pipelines.kitti_raw.kitti_raw_dataset import KittiRawDataset
from mine.input_pipelines.realestate10k import make_test_pairs
from mine.input_pipelines.realestate10k.realestate10k_dataset import (
    RealEstate10KDataset,
    read_camera_file,
    resize_image,
)

W, H = 48, 32  # rendered frames
IMG_SIZE = (32, 24)  # (W, H) the loaders resize to
N_PT = 16
CONFIG = {"training.sample_interval": 2, "testing.frames_apart": "random"}


def forward_scene(camtoworlds):
    """The synthetic `forward` scene seen by the given OpenCV camera-to-world matrices at W x H."""
    scene = build_scene("forward", width=W, height=H, views=len(camtoworlds))
    return dataclasses.replace(scene, camtoworlds=np.asarray(camtoworlds, np.float64))


def shifted_cameras(count, step):
    """Cameras of the forward rig moved `step` to the right per frame (looking down +z)."""
    c2w = np.tile(np.eye(4), (count, 1, 1))
    c2w[:, 0, 3] = np.arange(count) * step - 0.1
    return c2w


def assert_points_on_surface(item, depth_full):
    """Sampled camera-frame points project (with the item's K) onto pixels of the same z-depth."""
    K, xyzs = np.asarray(item["K"]), np.asarray(item["xyzs"])
    px = K @ xyzs
    px = px[:2] / px[2:]
    # K is for IMG_SIZE; the depth map is the W x H render.
    cols = np.floor(px[0] * W / IMG_SIZE[0]).astype(int)
    rows = np.floor(px[1] * H / IMG_SIZE[1]).astype(int)
    inside = (cols >= 0) & (cols < W) & (rows >= 0) & (rows < H)
    assert inside.all()
    np.testing.assert_allclose(xyzs[2], depth_full[rows, cols], rtol=0.05)


@pytest.fixture(scope="module")
def realestate(tmp_path_factory):
    """Two RealEstate10K sequences of 4 frames with camera files, frames and per-frame points."""
    root = tmp_path_factory.mktemp("re10k")
    scene = forward_scene(shifted_cameras(4, 0.05))
    renders = [render_view(scene, c2w, supersample=1) for c2w in scene.camtoworlds]
    K = scene.intrinsics
    rng = np.random.default_rng(0)
    info = {}
    for seq in ("seq_a", "seq_b"):
        os.makedirs(root / "frames" / seq)
        os.makedirs(root / "points" / seq)
        lines = [f"https://www.youtube.com/watch?v={seq}"]
        for n, (c2w, out) in enumerate(zip(scene.camtoworlds, renders)):
            ts = str(1000 * (n + 1))
            w2c = np.linalg.inv(c2w)
            intr = [K[0, 0] / W, K[1, 1] / H, K[0, 2] / W, K[1, 2] / H]
            lines.append(" ".join([ts] + [f"{v:.9f}" for v in intr + [0.0, 0.0] + list(w2c[:3].ravel())]))
            iio.imwrite(root / "frames" / seq / f"{ts}.png", to_uint8(out["rgb"]))
            # Points on the surface seen by this frame: back-projected pixel centres.
            rows, cols = rng.integers(0, H, 40), rng.integers(0, W, 40)
            z = out["depth"][rows, cols]
            cam = np.stack([(cols + 0.5 - K[0, 2]) / K[0, 0] * z, (rows + 0.5 - K[1, 2]) / K[1, 1] * z, z])
            np.save(root / "points" / seq / f"{ts}.npy", (c2w[:3, :3] @ cam + c2w[:3, 3:]).T)
        (root / "cameras").mkdir(exist_ok=True)
        (root / "cameras" / f"{seq}.txt").write_text("\n".join(lines) + "\n")
        info[seq] = [str(1000 * (n + 1)) for n in range(4)]
    return {"root": root, "scene": scene, "renders": renders, "timestamps": info}


def test_realestate10k_training_items(realestate):
    """Items hold resized frames, K for IMG_SIZE, G_src_tgt from the camera files, points on the surface."""
    scene, renders = realestate["scene"], realestate["renders"]
    ds = RealEstate10KDataset(CONFIG, None, str(realestate["root"]), False, IMG_SIZE,
                              supervision_count=1, visible_points_count=N_PT)
    assert len(ds) == 8
    src, tgt = ds[5]  # seq_b, frame 1
    assert src["img"].shape == (3, IMG_SIZE[1], IMG_SIZE[0]) and src["img"].dtype == torch.float32
    np.testing.assert_allclose(src["K"], np.diag([IMG_SIZE[0] / W, IMG_SIZE[1] / H, 1]) @ scene.intrinsics,
                               rtol=1e-5)
    assert_points_on_surface(src, renders[1]["depth"])
    # The target is within training.sample_interval frames; G_src_tgt = w2c_src @ c2w_tgt.
    G = tgt["G_src_tgt"][0]
    matches = [j for j in range(4) if np.allclose(
        G, np.linalg.inv(scene.camtoworlds[1]) @ scene.camtoworlds[j], atol=1e-5)]
    assert len(matches) == 1 and matches[0] != 1 and abs(matches[0] - 1) <= 2
    assert_points_on_surface({"K": tgt["K"][0], "xyzs": tgt["xyzs"][0]}, renders[matches[0]]["depth"])
    np.testing.assert_allclose(tgt["depths"][0], tgt["xyzs"][0][2])

    batch_src, batch_tgt = next(iter(DataLoader(ds, batch_size=2, collate_fn=ds.collate_fn)))
    assert "G_cam_world" not in batch_src
    assert batch_src["img"].shape == (2, 3, IMG_SIZE[1], IMG_SIZE[0])
    assert batch_src["xyzs"].shape == (2, 3, N_PT)
    assert batch_tgt["img"].shape == (2, 1, 3, IMG_SIZE[1], IMG_SIZE[0])
    assert batch_tgt["G_src_tgt"].shape == (2, 1, 4, 4)
    assert batch_tgt["xyzs"].shape == (2, 1, 3, N_PT)


def test_realestate10k_evaluation_pairs(realestate):
    """The pairs file picks the 5-frame / 10-frame / random target of Tucker & Snavely's protocol."""
    root, scene = realestate["root"], realestate["scene"]
    ts = realestate["timestamps"]["seq_a"]
    K = scene.intrinsics

    def obj(n):
        w2c = np.linalg.inv(scene.camtoworlds[n])
        return {"sequence_id": "seq_a", "frame_ts": ts[n], "camera_pose": list(w2c[:3].ravel()),
                "camera_intrinsics": [K[0, 0] / W, K[1, 1] / H, K[0, 2] / W, K[1, 2] / H]}

    line = {"sequence_id": "seq_a", "src_img_obj": obj(0), "tgt_img_obj_5_frames": obj(1),
            "tgt_img_obj_10_frames": obj(2), "tgt_img_obj_random": obj(3)}
    pairs = root / "test_pairs.json"
    pairs.write_text(json.dumps(line) + "\n")
    for apart, n in (("5", 1), ("10", 2), ("random", 3)):
        ds = RealEstate10KDataset({**CONFIG, "testing.frames_apart": apart}, None, str(pairs), True, IMG_SIZE,
                                  visible_points_count=N_PT)
        src, tgt = ds[0]
        np.testing.assert_allclose(tgt["G_src_tgt"][0],
                                   np.linalg.inv(scene.camtoworlds[0]) @ scene.camtoworlds[n], atol=1e-5)
        again = ds[0]
        np.testing.assert_array_equal(src["xyzs"], again[0]["xyzs"])  # validation is deterministic

    line["tgt_img_obj_random"]["frame_ts"] = "999"
    pairs.write_text(json.dumps(line) + "\n")
    ds = RealEstate10KDataset(CONFIG, None, str(pairs), True, IMG_SIZE, visible_points_count=N_PT)
    with pytest.raises(FileNotFoundError, match=os.path.join("frames", "seq_a", "999")):
        ds[0]


def test_realestate10k_made_test_pairs(tmp_path):
    """make_test_pairs: the release's pairs format, targets 5, 10 and a random in-range offset later, seeded."""
    (tmp_path / "cameras").mkdir()
    for s, count in (("s0", 40), ("s1", 25), ("s2", 8)):  # s2 is too short for a 10-frame target
        lines = ["https://www.youtube.com/watch?v=" + s]
        lines += [" ".join([str(33366 * n + 7)] + [f"{0.5 + n / 100:.4f}"] * 4 + ["0", "0"] + [f"{n + k}" for k in range(12)])
                  for n in range(count)]
        (tmp_path / "cameras" / f"{s}.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "pairs.json"
    make_test_pairs.main([str(tmp_path), str(out), "--seed", "3"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [obj["sequence_id"] for obj in lines] == ["s0"] * 5 + ["s1"] * 5
    for obj in lines:
        frames = sorted(read_camera_file(tmp_path / "cameras" / f"{obj['sequence_id']}.txt"), key=int)
        index = {ts: n for n, ts in enumerate(frames)}
        src = index[obj["src_img_obj"]["frame_ts"]]
        assert index[obj["tgt_img_obj_5_frames"]["frame_ts"]] == src + 5
        assert index[obj["tgt_img_obj_10_frames"]["frame_ts"]] == src + 10
        assert 0 < abs(index[obj["tgt_img_obj_random"]["frame_ts"]] - src) <= 30
        assert obj["src_img_obj"]["camera_pose"] == [float(src + k) for k in range(12)]
    sources = {(o["sequence_id"], o["src_img_obj"]["frame_ts"]) for o in lines}
    assert len(sources) == 10
    # The dataset reads the written file.
    ds = RealEstate10KDataset({**CONFIG, "testing.frames_apart": "10"}, None, str(out), True, IMG_SIZE)
    assert len(ds) == 10
    assert make_test_pairs.make_test_pairs(str(tmp_path), seed=3) == lines
    assert make_test_pairs.make_test_pairs(str(tmp_path), seed=4) != lines
    assert [o["sequence_id"] for o in make_test_pairs.make_test_pairs(str(tmp_path), sequences=1, seed=3)] in (
        ["s0"] * 5, ["s1"] * 5, [])
    with pytest.raises(FileNotFoundError, match="cameras"):
        make_test_pairs.make_test_pairs(str(tmp_path / "nothing"))


def test_realestate10k_missing_files(realestate, tmp_path):
    """Missing camera files, frames or points: errors that name what was expected."""
    with pytest.raises(FileNotFoundError, match="cameras"):
        RealEstate10KDataset(CONFIG, None, str(tmp_path), False, IMG_SIZE)
    (tmp_path / "cameras").mkdir()
    (tmp_path / "cameras" / "s.txt").write_text((realestate["root"] / "cameras" / "seq_a.txt").read_text())
    with pytest.raises(FileNotFoundError, match=r"frames/<sequence_id>/<timestamp>\.png"):
        RealEstate10KDataset(CONFIG, None, str(tmp_path), False, IMG_SIZE)
    shutil.copytree(realestate["root"] / "frames" / "seq_a", tmp_path / "frames" / "s")
    ds = RealEstate10KDataset(CONFIG, None, str(tmp_path), False, IMG_SIZE, visible_points_count=N_PT)
    with pytest.raises(FileNotFoundError, match=os.path.join("points", "s", "1000.npy")):
        ds[0]
    with pytest.raises(ValueError, match="visible_point_count needs 1000"):
        RealEstate10KDataset(CONFIG, None, str(realestate["root"]), False, IMG_SIZE,
                             visible_points_count=1000)[0]


KITTI_CALIB = """calib_time: 09-Jan-2012 13:57:47
S_rect_02: {w:.6e} {h:.6e}
P_rect_02: {f:.6e} 0.000000e+00 {cx:.6e} {t2:.6e} 0.000000e+00 {f:.6e} {cy:.6e} 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_rect_03: {w:.6e} {h:.6e}
P_rect_03: {f:.6e} 0.000000e+00 {cx:.6e} {t3:.6e} 0.000000e+00 {f:.6e} {cy:.6e} 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
"""


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    """One KITTI raw drive with two rectified stereo pairs (baseline 0.3) rendered from the scene."""
    root = tmp_path_factory.mktemp("kitti")
    baseline = 0.3
    c2w = shifted_cameras(2, 0.1)  # left cameras of frames 0 and 1
    right = c2w.copy()
    right[:, 0, 3] += baseline
    scene = forward_scene(np.concatenate([c2w, right]))
    K = scene.intrinsics
    date = root / "2011_09_26"
    drive = date / "2011_09_26_drive_0001_sync"
    for n in range(2):
        for cam, pose in (("02", c2w[n]), ("03", right[n])):
            os.makedirs(drive / f"image_{cam}" / "data", exist_ok=True)
            out = render_view(scene, pose, supersample=1)
            iio.imwrite(drive / f"image_{cam}" / "data" / f"{n:010d}.png", to_uint8(out["rgb"]))
    # Camera 02 sits 0.06 left of rectified camera 0, camera 03 `baseline` to its right.
    t2, t3 = 0.06, 0.06 - baseline
    (date / "calib_cam_to_cam.txt").write_text(KITTI_CALIB.format(
        w=W, h=H, f=K[0, 0], cx=K[0, 2], cy=K[1, 2], t2=K[0, 0] * t2, t3=K[0, 0] * t3))
    return {"root": root, "drive": drive, "baseline": baseline, "K": K}


def test_kitti_raw_stereo_pairs(kitti, tmp_path):
    """Left->right in validation, either way in training; G_src_tgt is the rectified baseline."""
    every_drive = {"data.kitti_split": "all"}
    ds = KittiRawDataset(every_drive, None, str(kitti["root"]), True, IMG_SIZE, visible_points_count=N_PT)
    assert len(ds) == 2
    src, tgt = ds[1]
    np.testing.assert_allclose(src["K"], np.diag([IMG_SIZE[0] / W, IMG_SIZE[1] / H, 1]) @ kitti["K"], rtol=1e-5)
    expected = np.eye(4)
    expected[0, 3] = kitti["baseline"]  # the right camera's origin in the left camera's frame
    np.testing.assert_allclose(tgt["G_src_tgt"][0], expected, atol=1e-5)
    right = iio.imread(kitti["drive"] / "image_03" / "data" / "0000000001.png")
    torch.testing.assert_close(tgt["img"][0], resize_image(right, IMG_SIZE))
    assert src["xyzs"].shape == (3, N_PT) and np.all(src["xyzs"][2] > 0)

    train = KittiRawDataset(every_drive, None, str(kitti["root"]), False, IMG_SIZE, visible_points_count=N_PT)
    baselines = {round(float(train[0][1]["G_src_tgt"][0][0, 3]), 4) for _ in range(20)}
    assert baselines == {kitti["baseline"], -kitti["baseline"]}

    split = kitti["root"] / "test.txt"
    split.write_text("2011_09_26_drive_0001_sync\n")
    assert len(KittiRawDataset({}, None, str(split), True, IMG_SIZE)) == 2
    split.write_text("2011_09_26_drive_0002_sync\n")
    with pytest.raises(FileNotFoundError, match="2011_09_26_drive_0002_sync"):
        KittiRawDataset({}, None, str(split), True, IMG_SIZE)
    os.rename(kitti["root"] / "2011_09_26" / "calib_cam_to_cam.txt", tmp_path / "calib")
    try:
        with pytest.raises(FileNotFoundError, match="calib_cam_to_cam.txt"):
            KittiRawDataset(every_drive, None, str(kitti["root"]), True, IMG_SIZE)
    finally:
        os.rename(tmp_path / "calib", kitti["root"] / "2011_09_26" / "calib_cam_to_cam.txt")


def test_kitti_raw_reads_tulsianis_split_by_default(tmp_path):
    """Without data.kitti_split the drives are Tulsiani et al.'s (MINE's KITTI protocol): 20 city
    drives for training, 4 held out; a drive of the split missing under the root is named."""
    split = lambda name: [line.strip() for line in open(os.path.join(
        kitti_raw_dataset.SPLITS_DIR, name)) if line.strip() and not line.startswith("#")]
    train, val, test = split("train.txt"), split("val.txt"), split("test.txt")
    assert (len(train), len(val), len(test)) == (20, 4, 4) and len(set(train + val + test)) == 28
    assert set(test) == {f"2011_09_26_drive_{n}_sync" for n in ("0001", "0057", "0084", "0106")}
    assert "2011_09_26_drive_0117_sync" in val and "2011_09_29_drive_0071_sync" in train
    for name in train + test:
        os.makedirs(tmp_path / name[:10] / name)
    os.makedirs(tmp_path / "2011_09_26" / "2011_09_26_drive_0048_sync")  # a validation drive: never read
    drives = lambda is_validation: [os.path.basename(d) for d in KittiRawDataset._drive_dirs(
        str(tmp_path), "tulsiani", is_validation)]
    assert drives(False) == train and drives(True) == test
    os.rmdir(tmp_path / "2011_09_26" / "2011_09_26_drive_0084_sync")
    with pytest.raises(FileNotFoundError, match="drive_0084_sync.*data.kitti_split: all"):
        KittiRawDataset({}, None, str(tmp_path), True, IMG_SIZE)
    with pytest.raises(ValueError, match="data.kitti_split"):
        KittiRawDataset({"data.kitti_split": "tucker"}, None, str(tmp_path), True, IMG_SIZE)


def test_flowers_views_and_poses_agree_on_parallax(tmp_path):
    """A light field with depth: a point at depth 0.03 is drawn into each central view where that
    view's cam_params camera sees it, and the views are interleaved as the ESLF layout says (row
    y * 14 + v, column x * 14 + u, view i_j at u = 3 + i, v = 3 + j). The loader's centre K, its
    G_src_tgt and the corner's K must then carry the point from the centre view to where each corner
    image shows it; a swapped or flipped axis (the corners are about 10 px from the centre here) or a
    pose used the wrong way round lands elsewhere."""
    w, h, z = 64, 48, 0.03
    params = read_cam_params(DEFAULT_CAM_PARAMS)
    centre_t = np.reshape(params["4_4"][1], (3, 4))[:, 3]
    point = np.array([0.0, 0.0, z]) - centre_t  # on the centre camera's axis (world = camera + t)
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    lf = np.zeros((h, 14, w, 14, 3), np.float32)  # [y, v, x, u, c]
    for name, (intrinsics, pose) in params.items():
        i, j = (int(v) for v in name.split("_"))
        fx, fy, cx, cy = intrinsics
        cam = np.reshape(pose, (3, 4)) @ np.append(point, 1.0)
        px, py = fx * w * cam[0] / cam[2] + cx * w, fy * h * cam[1] / cam[2] + cy * h
        lf[:, 3 + j, :, 3 + i] = np.exp(-((xs - px) ** 2 + (ys - py) ** 2) / (2 * 1.2**2))[..., None]
    (tmp_path / "imgs").mkdir()
    iio.imwrite(tmp_path / "imgs" / "IMG_0001_eslf.png", np.round(lf.reshape(h * 14, w * 14, 3) * 255).astype(np.uint8))

    def centroid(img):
        weight = np.asarray(img)[0].astype(np.float64)
        return np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()

    val = FlowersDataset({}, None, str(tmp_path), True, (w, h), visible_points_count=N_PT)
    for n in range(len(val)):
        src, tgt = val[n]
        seen_src, seen_tgt = centroid(src["img"]), centroid(tgt["img"][0])
        ray = np.linalg.inv(src["K"]) @ np.append(seen_src, 1.0)
        in_tgt = np.linalg.inv(tgt["G_src_tgt"][0]) @ np.append(z * ray / ray[2], 1.0)
        projected = (tgt["K"][0] @ in_tgt[:3])[:2] / in_tgt[2]
        assert np.linalg.norm(seen_tgt - seen_src) > 8  # the parallax a flip would reverse
        np.testing.assert_allclose(projected, seen_tgt, atol=0.3)


def make_eslf(h, w):
    """ESLF image [14 h, 14 w, 3] uint16 whose view (u, v) is flat with colour (u, v, 0) / 13."""
    u, v = np.meshgrid(np.arange(14), np.arange(14), indexing="xy")  # [v, u]
    views = np.stack([u, v, np.zeros_like(u)], -1) / 13.0  # [14 (v), 14 (u), 3]
    lf = np.broadcast_to(views[None, :, None], (h, 14, w, 14, 3))  # [y, v, x, u, c]
    return np.round(lf.reshape(h * 14, w * 14, 3) * 65535).astype(np.uint16)


def view_uv(img):
    """(u, v) of a flat view image [3, H, W] decoded from its colour."""
    return tuple(int(round(float(img[c].mean()) * 13)) for c in (0, 1))


def test_flowers_sub_aperture_views(tmp_path):
    """Views i_j decode from column 3 + i, row 3 + j; poses come from cam_params.txt; 4 corners in val."""
    (tmp_path / "imgs").mkdir()
    for name in ("IMG_0001_eslf.png", "IMG_0002_eslf.png"):  # 16-bit RGB, as cv2 writes it (BGR)
        cv2.imwrite(str(tmp_path / "imgs" / name), make_eslf(6, 9)[..., ::-1])
    params = read_cam_params(DEFAULT_CAM_PARAMS)
    val = FlowersDataset({}, None, str(tmp_path), True, IMG_SIZE, visible_points_count=N_PT)
    assert len(val) == 8
    corners = set()
    for n in range(4):
        src, tgt = val[n]
        assert view_uv(src["img"]) == (7, 7)  # centre view 4_4
        i, j = (view_uv(tgt["img"][0])[0] - 3, view_uv(tgt["img"][0])[1] - 3)
        corners.add((i, j))
        G_src = np.eye(4)
        G_src[:3] = np.reshape(params["4_4"][1], (3, 4))
        G_tgt = np.eye(4)
        G_tgt[:3] = np.reshape(params[f"{i}_{j}"][1], (3, 4))
        np.testing.assert_allclose(tgt["G_src_tgt"][0], G_src @ np.linalg.inv(G_tgt), atol=1e-6)
        fx, fy, cx, cy = params[f"{i}_{j}"][0]
        np.testing.assert_allclose(tgt["K"][0], [[fx * IMG_SIZE[0], 0, cx * IMG_SIZE[0]],
                                                 [0, fy * IMG_SIZE[1], cy * IMG_SIZE[1]], [0, 0, 1]], rtol=1e-6)
    assert corners == {(0, 0), (0, 7), (7, 0), (7, 7)}

    train = FlowersDataset({}, None, str(tmp_path), False, IMG_SIZE, visible_points_count=N_PT)
    assert len(train) == 2
    for _ in range(5):
        src, tgt = train[0]
        (su, sv), (tu, tv) = view_uv(src["img"]), view_uv(tgt["img"][0])
        assert (su, sv) != (tu, tv) and all(3 <= a <= 10 for a in (su, sv, tu, tv))

    (tmp_path / "dataset_list").mkdir()
    (tmp_path / "dataset_list" / "test.list").write_text("imgs/IMG_0001_eslf.png\nimgs/IMG_0009_eslf.png\n")
    with pytest.raises(FileNotFoundError, match="IMG_0009_eslf.png"):
        FlowersDataset({}, None, str(tmp_path), True, IMG_SIZE)
    with pytest.raises(FileNotFoundError, match=r"imgs/\*_eslf.png"):
        FlowersDataset({}, None, str(tmp_path / "dataset_list"), False, IMG_SIZE)
