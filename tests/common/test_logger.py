"""Tests for common/logger.py: TensorBoard events read back, silent non-main ranks, progress bar."""

import io

import imageio.v3 as iio
import numpy as np
import torch
from tensorboard.backend.event_processing import event_accumulator

from common import logger


def read_events(log_dir):
    accumulator = event_accumulator.EventAccumulator(
        str(log_dir), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0})
    accumulator.Reload()
    return accumulator


def decode_png(encoded):
    return iio.imread(io.BytesIO(encoded), extension=".png")


def test_scalars_and_image_read_back(tmp_path):
    image = torch.rand(6, 5, 3)
    image[0, 0] = torch.tensor([-0.5, 1.5, 0.5])  # out of range: clipped, not wrapped
    with logger.Logger(tmp_path, is_main=True) as log:
        log.scalar("train/loss", torch.tensor(0.25), step=1)
        log.scalars({"loss": 0.125, "psnr": 30.5}, step=2, prefix="train/")
        log.image("val/rgb", image, step=2)
        log.image("val/depth", np.linspace(0, 1, 30, dtype=np.float32).reshape(6, 5), step=2)

    events = read_events(tmp_path)
    loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert loss == [(1, 0.25), (2, 0.125)]
    assert [(e.step, e.value) for e in events.Scalars("train/psnr")] == [(2, 30.5)]

    (rgb_event,) = events.Images("val/rgb")
    assert (rgb_event.step, rgb_event.height, rgb_event.width) == (2, 6, 5)
    rgb = decode_png(rgb_event.encoded_image_string)
    expected = np.round(np.clip(image.numpy(), 0, 1) * 255)
    np.testing.assert_allclose(rgb[..., :3].astype(np.float64), expected, atol=1)
    assert tuple(rgb[0, 0, :2]) == (0, 255)
    (depth_event,) = events.Images("val/depth")
    assert (depth_event.height, depth_event.width) == (6, 5)


def test_non_main_rank_writes_nothing(tmp_path):
    log_dir = tmp_path / "logs"
    with logger.Logger(log_dir, is_main=False) as log:
        log.scalar("train/loss", 1.0, step=0)
        log.scalars({"psnr": 20.0}, step=0)
        log.image("val/rgb", torch.zeros(4, 4, 3), step=0)
        log.flush()
    assert not log_dir.exists()


def test_main_defaults_to_rank_zero(tmp_path):
    with logger.Logger(tmp_path) as log:  # no process group: this is rank 0
        assert log.is_main


def test_progress_shows_stats_and_resumes(capsys):
    bar = logger.progress(100, initial=40)
    bar.update(10)
    logger.set_progress_stats(bar, loss=torch.tensor(0.0123), psnr=27.456, rays_per_sec=12345.0)
    bar.refresh()
    bar.close()
    text = capsys.readouterr().err
    assert "50/100" in text
    assert "loss=0.0123" in text and "psnr=27.46" in text and "rays/s=12.3k" in text


def test_progress_disabled_prints_nothing(capsys):
    bar = logger.progress(10, disable=True)
    bar.update(5)
    logger.set_progress_stats(bar, loss=1.0)
    bar.close()
    assert capsys.readouterr().err == ""


def test_histograms_leave_out_non_finite_values(tmp_path):
    """TensorBoard fails on a histogram of no finite value: NaN and inf are left out, an all-NaN one is skipped."""
    with logger.Logger(tmp_path, is_main=True) as log:
        log.histogram("train/loss", np.array([1.0, np.nan, 3.0, np.inf]), step=1)
        log.histogram("train/loss", np.array([np.nan, np.nan]), step=2)
    accumulator = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={event_accumulator.HISTOGRAMS: 0})
    accumulator.Reload()
    (event,) = accumulator.Histograms("train/loss")
    assert (event.step, event.histogram_value.num, event.histogram_value.max) == (1, 2, 3.0)
