"""TensorBoard logging and a tqdm progress bar, both active on the main process only."""

import numpy as np
import torch
import tqdm
from torch.utils.tensorboard import SummaryWriter

from common import dist


class Logger:
    """Writes scalars and images to TensorBoard event files in `log_dir` on the main process.

    On other ranks (is_main False) nothing is created and every method does nothing.
    """

    def __init__(self, log_dir, is_main=None):
        self.is_main = dist.is_main_process() if is_main is None else is_main
        self.writer = SummaryWriter(log_dir=str(log_dir)) if self.is_main else None

    def scalar(self, tag, value, step):
        """Logs one number (float or 0-d tensor) under `tag`."""
        if self.writer is not None:
            self.writer.add_scalar(tag, float(value), step)

    def scalars(self, values, step, prefix=""):
        """Logs each {name: number} of `values` under `prefix + name`."""
        for name, value in values.items():
            self.scalar(prefix + name, value, step)

    def histogram(self, tag, values, step):
        """Logs the distribution of the finite `values` (a 1-d array or tensor) under `tag`.

        NaN and infinities are left out (TensorBoard cannot bin them and fails on a histogram of
        none); the scalars beside it still show them.
        """
        if self.writer is None:
            return
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            self.writer.add_histogram(tag, values, step)

    def image(self, tag, image, step):
        """Logs an image [H, W, 3] or [H, W], float in [0, 1] (tensor or numpy array)."""
        if self.writer is None:
            return
        if isinstance(image, torch.Tensor):
            image = image.detach().float().cpu().numpy()
        # Clip: values outside [0, 1] would wrap around when quantised to 8 bits.
        image = np.clip(image, 0.0, 1.0)
        self.writer.add_image(tag, image, step, dataformats="HW" if image.ndim == 2 else "HWC")

    def flush(self):
        if self.writer is not None:
            self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def progress(total_steps, initial=0, disable=False, desc="train"):
    """tqdm bar over training steps, starting at `initial` (a resumed run), with rate and ETA."""
    return tqdm.tqdm(total=total_steps, initial=initial, disable=disable, desc=desc,
                     unit="step", dynamic_ncols=True, smoothing=0.1)


def set_progress_stats(bar, loss=None, psnr=None, rays_per_sec=None):
    """Shows loss, PSNR and rays/s (whichever are given) after the bar."""
    stats = {}
    if loss is not None:
        stats["loss"] = f"{float(loss):.4g}"
    if psnr is not None:
        stats["psnr"] = f"{float(psnr):.2f}"
    if rays_per_sec is not None:
        stats["rays/s"] = tqdm.tqdm.format_sizeof(float(rays_per_sec))
    bar.set_postfix(stats, refresh=False)
