"""Tests for common/sheets.py: panel placement, PSNR text, summary grid, files and TensorBoard images."""

import imageio.v3 as iio
import numpy as np
import torch

from common import logger, sheets
from tests.common.test_logger import decode_png, read_events


def views(count, height=128, width=96):
    """`count` views of random ground truth, a noisy prediction and a depth ramp."""
    rng = np.random.default_rng(0)
    for i in range(count):
        gt = rng.random((height, width, 3), dtype=np.float32)
        pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1).astype(np.float32)
        depth = np.linspace(1, 5, height * width, dtype=np.float32).reshape(height, width)
        yield {"gt": gt, "pred": pred, "depth": depth, "psnr": 20.0 + i, "label": f"view {i}"}


def test_panels_in_order_and_prediction_unchanged():
    view = next(views(1))
    sheet = sheets.view_sheet(torch.from_numpy(view["gt"]), torch.from_numpy(view["pred"]),
                              depth=torch.from_numpy(view["depth"]))
    assert sheet.shape == (128, 4 * 96, 3) and sheet.dtype == np.uint8
    gt_panel, pred_panel, depth_panel, error_panel = np.split(sheet, 4, axis=1)
    np.testing.assert_array_equal(gt_panel, np.round(view["gt"] * 255))
    np.testing.assert_array_equal(pred_panel, np.round(view["pred"] * 255))
    # Depth ramps from the first to the last row: turbo's dark blue at the top, dark red at the bottom.
    assert depth_panel[0, 0, 2] > depth_panel[0, 0, 0] and depth_panel[-1, -1, 0] > depth_panel[-1, -1, 2]
    assert not np.array_equal(error_panel, pred_panel)


def test_grey_depth_panel_when_none_and_small_views_enlarged():
    gt = np.zeros((8, 6, 3), dtype=np.float32)
    sheet = sheets.view_sheet(gt, gt)
    assert sheet.shape == (128, 4 * 96, 3)  # 8 rows enlarged 16 times
    assert (sheet[:, 2 * 96:3 * 96] == sheets.GREY).all()


def test_psnr_and_label_text_change_error_panel():
    view = next(views(1))
    bare = sheets.view_sheet(view["gt"], view["pred"])
    with_psnr = sheets.view_sheet(view["gt"], view["pred"], psnr=27.5)
    with_label = sheets.view_sheet(view["gt"], view["pred"], psnr=27.5, label="r_0")
    changed = np.any(bare != with_psnr, axis=-1)
    assert changed[:, 3 * 96:].any() and not changed[:, :3 * 96].any()
    assert np.any(with_label != with_psnr)
    assert np.any(with_psnr != sheets.view_sheet(view["gt"], view["pred"], psnr=12.5))


def test_summary_grid_shape_and_downscale():
    sheet = np.full((10, 40, 3), 200, dtype=np.uint8)
    grid = sheets.summary_sheet([sheet] * 5, columns=2)
    assert grid.shape == (30, 80, 3)
    assert (grid[20:, 40:] == 0).all() and (grid[20:, :40] == 200).all()
    wide = sheets.summary_sheet([np.zeros((100, 4000, 3), dtype=np.uint8)] * 3, columns=3, width=1200)
    assert wide.shape == (10, 1200, 3)  # one row of three 400-wide cells


def test_write_sheets_files_and_tensorboard(tmp_path):
    with logger.Logger(tmp_path / "logs", is_main=True) as log:
        summary = sheets.write_sheets(tmp_path / "eval", views(3), log=log, step=7)
    sheet_dir = tmp_path / "eval" / "sheets"
    assert sorted(p.name for p in sheet_dir.iterdir()) == [
        "summary.png", "view_000.png", "view_001.png", "view_002.png"]
    assert summary == str(sheet_dir / "summary.png")
    first = iio.imread(sheet_dir / "view_000.png")
    assert first.shape == (128, 4 * 96, 3)
    assert iio.imread(summary).shape == (2 * 128, 2 * 4 * 96, 3)

    events = read_events(tmp_path / "logs")
    (view_event,) = events.Images("sheets/view_000")
    assert view_event.step == 7
    np.testing.assert_array_equal(decode_png(view_event.encoded_image_string)[..., :3], first)
    (summary_event,) = events.Images("sheets/summary")
    assert (summary_event.height, summary_event.width) == (2 * 128, 2 * 4 * 96)


def test_sheets_of_an_earlier_eval_are_replaced(tmp_path):
    sheets.write_sheets(tmp_path, views(3))
    sheets.write_sheets(tmp_path, views(1))
    assert sorted(p.name for p in (tmp_path / "sheets").iterdir()) == ["summary.png", "view_000.png"]


def test_tensorboard_view_sheets_at_most_summary_width(tmp_path):
    with logger.Logger(tmp_path / "logs", is_main=True) as log:
        sheets.write_sheets(tmp_path / "eval", views(1, height=128, width=600), log=log)
    assert iio.imread(tmp_path / "eval" / "sheets" / "view_000.png").shape == (128, 2400, 3)
    (event,) = read_events(tmp_path / "logs").Images("sheets/view_000")
    assert (event.height, event.width) == (85, sheets.SUMMARY_WIDTH)
