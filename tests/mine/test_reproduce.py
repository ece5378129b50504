"""`make reproduce-mine` end to end on the RealEstate10K stand-in (2 real sequence ids, tiny model): missing data
named, the dry-run plan, a SIGKILLed run resumed from its checkpoint, the written table, finished runs skipped.
The KITTI raw and Flowers stand-ins are read by MINE's loaders."""

import json
import math
import os
import subprocess

import torch

from data_tools import standin
from mine.input_pipelines.flowers.flowers_dataset import FlowersDataset
from mine.input_pipelines.kitti_raw.kitti_raw_dataset import KittiRawDataset
from mine.scripts import reproduce, summarize
from tests.conftest import kill_once
from tests.mine.conftest import REPO

TINY = {"data.img_h": 128, "data.img_w": 128, "data.per_gpu_batch_size": 2, "data.visible_point_count": 64,
        "model.imagenet_pretrained": False, "model.num_layers": 18, "model.pos_encoding_multires": 4,
        "mpi.num_bins_coarse": 4, "lr.decay_steps": "1000", "training.eval_interval": 100000,
        "training.epochs": 1, "training.checkpoint_every": 2, "training.sample_interval": 2}
SEQUENCES = ["fc966f25afa3659f", "0c5ed899789e60ad"]
PROTOCOL_KEYS = {"dataset", "pairs", "img_hw", "num_planes", "crop_fraction", "uint8_rounding", "ssim", "lpips"}


def make_reproduce(tmp_path, data_dir, *extra, popen=False):
    args = f"--extra_config '{json.dumps(TINY)}' --out {tmp_path / 'results' / 'x'}"
    command = ["make", "-s", "-o", ".venv/.installed", "reproduce-mine", f"RUNS_DIR={tmp_path / 'runs'}",
               f"DATA_DIR={data_dir}", f"ARGS={args}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if popen:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def saved_steps(log_text):
    """Global steps of the 'Latest checkpoint saved' lines, per training session of the log."""
    sessions = []
    for line in log_text.splitlines():
        if "Training config" in line:
            sessions.append([])
        elif "Latest checkpoint saved" in line:
            sessions[-1].append(int(line.rsplit("global step ", 1)[1].rstrip(")")))
    return sessions


def test_make_reproduce_realestate10k_end_to_end(tmp_path):
    data = tmp_path / "realestate10k"
    standin.layout("realestate10k").write("realestate10k", data, SEQUENCES, res=(64, 48), views=11)
    run = tmp_path / "runs" / "mine" / "reproduce" / "realestate10k" / "re10k"

    missing = make_reproduce(tmp_path, tmp_path / "nothing")
    assert missing.returncode != 0
    assert "nothing was run" in missing.stderr and str(tmp_path / "nothing" / "test" / "frames") in missing.stderr
    assert "cameras/<sequence_id>.txt" in missing.stderr and not (tmp_path / "runs").exists()

    plan = make_reproduce(tmp_path, data, "DRY_RUN=1")
    assert plan.returncode == 0, plan.stderr
    assert "realestate10k/5_frames+10_frames+random new" in plan.stdout and "measured here" in plan.stdout
    assert "total ~" in plan.stdout and not run.exists()

    # Killed after its first checkpoint, then rerun: training resumes from that checkpoint.
    logged = lambda: (run / "training.log").exists() and "Latest checkpoint saved" in (run / "training.log").read_text()
    kill_once(make_reproduce(tmp_path, data, popen=True), lambda: (run / "checkpoint_latest.pth").exists() and logged(),
              300)
    killed_step = torch.load(run / "checkpoint_latest.pth", map_location="cpu", weights_only=True)["global_step"]
    assert killed_step >= 2 and not (run / "eval" / "metrics.json").exists()
    done = make_reproduce(tmp_path, data)
    assert done.returncode == 0, done.stderr[-3000:]
    first, resumed = saved_steps((run / "training.log").read_text())
    assert killed_step in first and resumed and min(resumed) > killed_step and resumed[-1] == 11  # 22 items / 2

    table = json.loads((tmp_path / "results" / "x.json").read_text())
    assert [r["key"] for r in table["rows"]] == ["realestate10k/5_frames", "realestate10k/10_frames",
                                                "realestate10k/random"]
    assert table["finished"] == "3 of 3" and table["dataset"] == "realestate10k"
    for row in table["rows"]:
        assert all(math.isfinite(row["ours"][m]) for m in ("psnr", "ssim"))
        assert row["ours"]["lpips"] is None or math.isfinite(row["ours"]["lpips"])
        assert PROTOCOL_KEYS <= set(row["protocol"]) and row["protocol"]["pairs"] == ["5", "10", "random"]
        assert row["run"]["train_seconds"] > 0 and row["run"]["hardware"] and row["run"]["commit"]
    assert table["rows"][0]["ours"] != table["rows"][1]["ours"]  # each row reads its own protocol
    md = (tmp_path / "results" / "x.md").read_text()
    assert all(f"| {t} |" in md for t in ("5 frames", "10 frames", "random")) and "**mean**" in md
    assert '"uint8_rounding": false' in md

    record, log = (run / "reproduce.json").read_text(), (run / "training.log").read_text()
    again = make_reproduce(tmp_path, data)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run / "reproduce.json").read_text() == record and (run / "training.log").read_text() == log

    summary = tmp_path / "summary"
    summarize.main([str(tmp_path / "runs" / "mine" / "reproduce"), "--data_dir", str(data), "--out", str(summary)])
    assert json.loads(summary.with_suffix(".json").read_text())["rows"] == table["rows"]


def test_kitti_raw_and_flowers_standins_are_read_by_the_loaders(tmp_path):
    drives = ["2011_09_26_drive_0001_sync", "2011_09_26_drive_0005_sync"]  # a test and a train drive
    standin.layout("kitti_raw").write("kitti_raw", tmp_path / "kitti", drives, res=(96, 32), views=2)
    config = {"data.kitti_split": "all"}
    val = KittiRawDataset(config, None, str(tmp_path / "kitti"), True, (128, 128), visible_points_count=8)
    assert len(val) == 4
    src, tgt = val[0]
    assert src["img"].shape == (3, 128, 128) and abs(float(tgt["G_src_tgt"][0][0, 3])) > 0.05
    missing = reproduce.missing_data("kitti_raw", str(tmp_path / "kitti"), [], {})
    assert any("2011_09_26_drive_0057_sync" in m for m in missing)  # a test drive not written
    assert not any("2011_09_26_drive_0001_sync" in m for m in missing)

    standin.layout("flowers").write("flowers", tmp_path / "flowers", ["IMG_2584", "IMG_2189"], res=(16, 12))
    val = FlowersDataset({}, None, str(tmp_path / "flowers"), True, (128, 128), visible_points_count=8)
    train = FlowersDataset({}, None, str(tmp_path / "flowers"), False, (128, 128), visible_points_count=8)
    assert len(val) == 4 and len(train) == 1  # the centre view -> 4 corners of the test light field
    src, tgt = val[0]
    assert src["img"].shape == (3, 128, 128) and not torch.equal(src["img"], tgt["img"][0])
