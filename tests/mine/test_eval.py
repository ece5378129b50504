"""mine.eval: per-protocol PSNR / SSIM / LPIPS against the right targets, on flat-colour views.

The model's density is made huge on every plane, so (with source-RGB blending) each synthesised
view is the source image; with flat-colour images every score is then known in closed form.
"""

import json
import logging
import re

import cv2
import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing import event_accumulator

from mine import eval as mine_eval
from mine.network.ssim import ssim
from mine.synthesis_task import SynthesisTask

CONFIGS = __import__("pathlib").Path(__file__).parents[2] / "mine" / "configs"
SIZE = 128


def opaque_checkpoint(run_dir, dataset_yaml, **overrides):
    """A random ResNet-18 MINE whose planes are all opaque (sigma 1000), saved in the original's format."""
    config = yaml.safe_load((CONFIGS / "params_default.yaml").read_text())
    config.update(yaml.safe_load((CONFIGS / dataset_yaml).read_text()))
    config.update({"data.img_h": SIZE, "data.img_w": SIZE, "mpi.num_bins_coarse": 4, "model.num_layers": 18,
                   "model.imagenet_pretrained": False, "data.visible_point_count": 8, **overrides})
    torch.manual_seed(0)
    task = SynthesisTask(dict(config, global_rank=0), logging.getLogger("test"), is_val=True)
    decoder = task.decoder.state_dict()
    for s in range(4):
        key = f"convs.(-'-d-i-s-p-c-o-n-v-'-,- -{s}-).conv"
        decoder[key + ".weight"][3] = 0.0
        decoder[key + ".bias"][3] = 1000.0
    run_dir.mkdir()
    torch.save({"backbone": {"module." + k: v for k, v in task.backbone.state_dict().items()},
                "decoder": {"module." + k: v for k, v in decoder.items()}}, run_dir / "checkpoint_latest.pth")
    (run_dir / "params.yaml").write_text(yaml.safe_dump(config))
    return run_dir / "checkpoint_latest.pth"


def flat_scores(src_rgb, tgt_rgb):
    """PSNR and MINE-SSIM of a flat SIZE x SIZE image of colour src_rgb against one of tgt_rgb."""
    src, tgt = (torch.tensor(c, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, SIZE, SIZE) for c in (src_rgb, tgt_rgb))
    mse = float(np.mean((np.asarray(src_rgb) - np.asarray(tgt_rgb)) ** 2))
    return -10 * np.log10(mse), ssim(src, tgt).item()


def test_flowers_centre_to_corners(tmp_path):
    """Flowers: the four corner views are scored against the centre view's rendering."""
    u, v = np.meshgrid(np.arange(14), np.arange(14), indexing="xy")
    colours = np.stack([u, v, np.full_like(u, 5)], -1) / 13.0  # view (u, v) is flat with this colour
    eslf = np.broadcast_to(colours[None, :, None], (10, 14, 12, 14, 3)).reshape(140, 168, 3)
    (tmp_path / "data" / "imgs").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "data" / "imgs" / "IMG_0001_eslf.png"), np.round(eslf[..., ::-1] * 65535).astype(np.uint16))
    ckpt = opaque_checkpoint(tmp_path / "run", "params_flowers.yaml")

    results = mine_eval.main(["--checkpoint_path", str(ckpt), "--data_path", str(tmp_path / "data")])
    saved = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert saved["protocols"] == results["protocols"] and list(saved["protocols"]) == ["centre_to_corners"]
    assert saved["protocols"]["centre_to_corners"]["count"] == 4
    assert saved["ssim_variant"].startswith("MINE")
    centre = colours[7, 7]  # view 4_4
    for item, (i, j) in zip(saved["per_item"]["centre_to_corners"], [(0, 0), (7, 0), (0, 7), (7, 7)]):
        expected_psnr, expected_ssim = flat_scores(centre, colours[3 + j, 3 + i])
        assert item["psnr"] == pytest.approx(expected_psnr, abs=0.05)
        assert item["ssim"] == pytest.approx(expected_ssim, abs=1e-3)
        assert item["lpips"] is None or item["lpips"] >= 0
    # One contact sheet per scored view and the summary, beside metrics.json and in its TensorBoard events.
    sheets = sorted(p.name for p in (tmp_path / "run" / "eval" / "sheets").iterdir())
    assert sheets == ["summary.png", "view_000.png", "view_001.png", "view_002.png", "view_003.png"]
    tags = event_accumulator.EventAccumulator(str(tmp_path / "run" / "eval")).Reload().Tags()["images"]
    assert "sheets/summary" in tags and "sheets/view_003" in tags


def test_realestate10k_protocols(tmp_path):
    """RealEstate10K pairs: 5-frame, 10-frame and random targets each scored in their own protocol."""
    data = tmp_path / "data"
    colours = {ts: tuple(np.array(c) / 255) for ts, c in
               {"100": (51, 102, 153), "200": (77, 102, 153), "300": (51, 26, 153), "400": (230, 230, 230)}.items()}
    (data / "frames" / "s").mkdir(parents=True)
    (data / "points" / "s").mkdir(parents=True)
    rng = np.random.default_rng(0)
    objs = {}
    for n, (ts, colour) in enumerate(colours.items()):
        cv2.imwrite(str(data / "frames" / "s" / f"{ts}.png"),
                    np.full((32, 48, 3), np.round(np.array(colour[::-1]) * 255), np.uint8))
        w2c = np.eye(4)
        w2c[0, 3] = -0.05 * n
        # Points 1 to 3 in front of the camera, inside its field of view.
        cam = np.concatenate([rng.uniform(-0.3, 0.3, (2, 20)), rng.uniform(1, 3, (1, 20))]) * [[1], [1], [1]]
        cam[:2] *= cam[2]
        np.save(data / "points" / "s" / f"{ts}.npy", (np.linalg.inv(w2c) @ np.vstack([cam, np.ones(20)]))[:3].T)
        objs[ts] = {"sequence_id": "s", "frame_ts": ts, "camera_intrinsics": [0.8, 1.2, 0.5, 0.5],
                    "camera_pose": list(w2c[:3].ravel())}
    pairs = data / "test_pairs.json"
    pairs.write_text(json.dumps({"sequence_id": "s", "src_img_obj": objs["100"], "tgt_img_obj_5_frames": objs["200"],
                                 "tgt_img_obj_10_frames": objs["300"], "tgt_img_obj_random": objs["400"]}) + "\n")
    ckpt = opaque_checkpoint(tmp_path / "run", "params_realestate.yaml")

    out = tmp_path / "metrics"
    results = mine_eval.main(["--checkpoint_path", str(ckpt), "--data_path", str(pairs), "--output_dir", str(out)])
    assert list(results["protocols"]) == ["5", "10", "random"]
    for protocol, ts in (("5", "200"), ("10", "300"), ("random", "400")):
        expected_psnr, expected_ssim = flat_scores(colours["100"], colours[ts])
        assert results["protocols"][protocol]["count"] == 1
        assert results["protocols"][protocol]["psnr"] == pytest.approx(expected_psnr, abs=0.05)
        assert results["protocols"][protocol]["ssim"] == pytest.approx(expected_ssim, abs=1e-3)
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "realestate10k"
    assert sorted(p.name for p in (out / "sheets").iterdir()) == ["summary.png", "view_000.png", "view_001.png",
                                                                   "view_002.png"]  # one per protocol's pair

    with pytest.raises(FileNotFoundError, match="nowhere"):
        mine_eval.main(["--checkpoint_path", str(ckpt), "--data_path", str(tmp_path / "nowhere"),
                        "--output_dir", str(tmp_path / "none")])
    assert not (tmp_path / "none").exists()


def test_crop_fraction_scores_the_central_part():
    """testing.crop_fraction drops floor(fraction * size) pixels per border before scoring."""
    img = torch.zeros(1, 3, 40, 60)
    img[..., :2, :] = img[..., -2:, :] = img[..., :, :3] = img[..., :, -3:] = 1.0  # a 2-row, 3-column frame
    assert mine_eval.crop_borders(img, 0.0).shape == (1, 3, 40, 60)
    cropped = mine_eval.crop_borders(img, 0.05)
    assert cropped.shape == (1, 3, 36, 54) and cropped.max() == 0.0
    assert mine_eval.crop_borders(img, 0.04).shape == (1, 3, 40 - 2, 60 - 4) and mine_eval.crop_borders(img, 0.04).max() == 1.0


def test_kitti_raw_left_to_right(tmp_path):
    """KITTI raw: each right image is scored against the rendering of its left image."""
    drive = tmp_path / "data" / "2011_09_26" / "2011_09_26_drive_0001_sync"
    colours = {"02": (51, 102, 153), "03": (153, 51, 26)}
    for cam, colour in colours.items():
        (drive / f"image_{cam}" / "data").mkdir(parents=True)
        cv2.imwrite(str(drive / f"image_{cam}" / "data" / "0000000000.png"), np.full((40, 120, 3), colour[::-1], np.uint8))
    p = "7.2e+02 0 6.0e+02 {t} 0 7.2e+02 1.8e+02 0 0 0 1 0"
    (tmp_path / "data" / "2011_09_26" / "calib_cam_to_cam.txt").write_text(
        f"calib_time: 09-Jan-2012 13:57:47\nP_rect_02: {p.format(t=45.0)}\nP_rect_03: {p.format(t=-340.0)}\n")
    ckpt = opaque_checkpoint(tmp_path / "run", "params_kitti_raw.yaml", **{"data.img_w": 256, "data.kitti_split": "all"})
    results = mine_eval.main(["--checkpoint_path", str(ckpt), "--data_path", str(tmp_path / "data")])
    expected_psnr, _ = flat_scores(np.array(colours["02"]) / 255, np.array(colours["03"]) / 255)
    assert results["protocols"]["stereo"]["count"] == 1
    assert results["protocols"]["stereo"]["psnr"] == pytest.approx(expected_psnr, abs=0.05)


def test_protocol_defaults_match_the_readme_table(tmp_path):
    """The `protocol` block at params_realestate.yaml with a pairs JSON equals the README's table."""
    section = (CONFIGS.parents[1] / "mine" / "README.md").read_text().split("## Evaluation (`mine/eval.py`)")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `(\w+)` \| `(.+?)` \|", section, re.M)
    assert len(rows) == 8
    config = yaml.safe_load((CONFIGS / "params_default.yaml").read_text())
    config.update(yaml.safe_load((CONFIGS / "params_realestate.yaml").read_text()))
    pairs = tmp_path / "test_pairs.json"
    pairs.write_text("{}")
    protocol = mine_eval.protocol(config, mine_eval.default_protocols(config, str(pairs)))
    for field, value in rows:
        assert protocol[field] == json.loads(value), field
