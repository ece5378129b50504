"""Contact sheets of eval results: ground truth | prediction | depth | error map, one per test view.

Every eval writes `sheets/view_<i>.png` per test view and `sheets/summary.png` (all views in a grid)
beside its metrics, and logs the same images to TensorBoard when it has a logger.
"""

import glob
import math
import os

import cv2
import imageio.v3 as iio
import numpy as np
import torch

MIN_PANEL_HEIGHT = 128  # smaller views are enlarged (nearest neighbour) so the text stays legible
ERROR_SCALE = 0.2  # error panel colour range: mean |pred - gt| over channels from 0 to this
DEPTH_PERCENTILES = (1.0, 99.0)  # depth colour range: robust to a few far or empty rays
SUMMARY_WIDTH = 1600  # pixels: the summary grid is downscaled to at most this width
GREY = 128


def _numpy(x):
    """A tensor or array as a float32 numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _rgb8(image):
    """float [H, W, 3] in [0, 1] -> uint8 [H, W, 3] (clipped: out-of-range values would wrap)."""
    return np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255).astype(np.uint8)


def colorize(values, lo, hi, colormap=cv2.COLORMAP_TURBO):
    """values [H, W] mapped linearly from [lo, hi] through an OpenCV colour map -> uint8 RGB [H, W, 3]."""
    scaled = (np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo) - lo) / max(hi - lo, 1e-12)
    gray = np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(gray, colormap), cv2.COLOR_BGR2RGB)


def depth_panel(depth, shape):
    """depth [H, W] (any scale) as a turbo image normalised by its 1st-99th percentiles; grey when None."""
    if depth is None:
        return np.full(shape, GREY, dtype=np.uint8)
    depth = _numpy(depth).reshape(shape[:2])
    finite = depth[np.isfinite(depth)]
    if finite.size == 0:
        return np.full(shape, GREY, dtype=np.uint8)
    lo, hi = np.percentile(finite, DEPTH_PERCENTILES)
    return colorize(depth, lo, hi)


def error_panel(gt, pred):
    """Mean |pred - gt| over channels as a viridis image over [0, ERROR_SCALE]."""
    return colorize(np.abs(pred - gt).mean(axis=-1), 0.0, ERROR_SCALE, cv2.COLORMAP_VIRIDIS)


def put_text(image, text, row):
    """Writes `text` in white with a black outline on line `row` (0 top, -1 bottom) of `image`, in place."""
    height = image.shape[0]
    scale = height / 320
    thickness = max(1, round(scale * 2))
    (_, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    line = text_height + baseline + 2
    y = line * (row + 1) if row >= 0 else height - baseline - 2
    for color, width in (((0, 0, 0), thickness + 2), ((255, 255, 255), thickness)):
        cv2.putText(image, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, width, cv2.LINE_AA)


def view_sheet(gt, pred, depth=None, psnr=None, label=None):
    """One view's contact sheet: ground truth | prediction | depth | error map, as uint8 [H', 4 W', 3].

    gt, pred: float [H, W, 3] in [0, 1] (numpy or torch); depth: [H, W] distance or disparity, any
    scale, or None (grey panel). The error panel carries the label, the PSNR and the error scale.
    Views under MIN_PANEL_HEIGHT rows are enlarged by a whole factor (nearest neighbour).
    """
    gt, pred = _numpy(gt)[..., :3], _numpy(pred)[..., :3]
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    error = error_panel(gt, pred)
    lines = [text for text in (label, None if psnr is None else f"PSNR {float(psnr):.2f}") if text]
    panels = [_rgb8(gt), _rgb8(pred), depth_panel(depth, error.shape), error]
    factor = math.ceil(MIN_PANEL_HEIGHT / gt.shape[0])
    panels = [panel.repeat(factor, axis=0).repeat(factor, axis=1) for panel in panels]
    error = panels[-1]
    for row, text in enumerate(lines):
        put_text(error, text, row)
    put_text(error, f"|err| 0-{ERROR_SCALE:g}", -1)
    return np.concatenate(panels, axis=1)


def fit_width(image, width):
    """Downscales `image` (area interpolation) to at most `width` columns; narrower images are kept."""
    height, old_width = image.shape[:2]
    if old_width <= width:
        return image
    new_height = max(1, round(height * width / old_width))
    return cv2.resize(image, (width, new_height), interpolation=cv2.INTER_AREA)


def summary_sheet(sheets, columns=2, width=SUMMARY_WIDTH):
    """All view sheets in a grid of `columns`, row by row, black where a row is short; at most `width` wide."""
    if not sheets:
        raise ValueError("summary_sheet needs at least one view sheet")
    columns = min(columns, len(sheets))
    cells = [fit_width(sheet, width // columns) for sheet in sheets]
    cell_height = max(cell.shape[0] for cell in cells)
    cell_width = max(cell.shape[1] for cell in cells)
    rows = math.ceil(len(cells) / columns)
    grid = np.zeros((rows * cell_height, columns * cell_width, 3), dtype=np.uint8)
    for i, cell in enumerate(cells):
        top, left = (i // columns) * cell_height, (i % columns) * cell_width
        grid[top:top + cell.shape[0], left:left + cell.shape[1]] = cell
    return grid


class SheetWriter:
    """Writes view sheets one at a time as an eval renders them, then the summary (see write_sheets).

    Only a downscaled copy of each sheet is kept for the summary, so memory stays flat:

        writer = SheetWriter(out_dir, log, step)
        for ...: writer.add(gt=gt, pred=pred, depth=depth, psnr=psnr, label=label)
        summary_path = writer.finish()
    """

    def __init__(self, out_dir, log=None, step=0, columns=2):
        self.sheet_dir = os.path.join(out_dir, "sheets")
        os.makedirs(self.sheet_dir, exist_ok=True)
        for stale in glob.glob(os.path.join(self.sheet_dir, "view_*.png")):
            os.remove(stale)  # an earlier eval of more views: its extra sheets would mislead
        self.log, self.step, self.columns = log, step, columns
        self.thumbnails = []

    def add(self, **view):
        """Writes sheets/view_<i>.png of one view (view_sheet's arguments) and logs it; returns its path."""
        i = len(self.thumbnails)
        sheet = view_sheet(**view)
        path = os.path.join(self.sheet_dir, f"view_{i:03d}.png")
        iio.imwrite(path, sheet)
        if self.log is not None:  # at most SUMMARY_WIDTH wide: a continuous eval logs every view at every step
            self.log.image(f"sheets/view_{i:03d}", fit_width(sheet, SUMMARY_WIDTH) / 255.0, self.step)
        self.thumbnails.append(fit_width(sheet, SUMMARY_WIDTH // self.columns))
        return path

    def finish(self):
        """Writes sheets/summary.png of every view added and logs it; returns its path."""
        summary = summary_sheet(self.thumbnails, self.columns)
        path = os.path.join(self.sheet_dir, "summary.png")
        iio.imwrite(path, summary)
        if self.log is not None:
            self.log.image("sheets/summary", summary / 255.0, self.step)
            self.log.flush()
        return path


def write_sheets(out_dir, views, log=None, step=0, columns=2):
    """Writes out_dir/sheets/view_<i>.png for each view and out_dir/sheets/summary.png; returns the summary path.

    views: an iterable (a generator keeps memory flat) of dicts of view_sheet's arguments (gt, pred,
    depth, psnr, label). With a common.logger.Logger `log`, the same images go to TensorBoard as
    sheets/view_<i> (downscaled to SUMMARY_WIDTH where wider) and sheets/summary at `step`.
    """
    writer = SheetWriter(out_dir, log, step, columns)
    for view in views:
        writer.add(**view)
    return writer.finish()
