# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""MINE helpers: disparity visualisation, checkpoint restore/save, batched inverse, NeRF encoding."""

import logging
import os

import torch

from common import checkpoints


def disparity_normalization_vis(disparity):
    """Min-max normalises each disparity map to [0, 1]: Bx1xHxW -> Bx1xHxW."""
    if disparity.dim() != 4 or disparity.size(1) != 1:
        raise ValueError(f"disparity must be Bx1xHxW, got {tuple(disparity.shape)}")
    disp_min = torch.amin(disparity, (1, 2, 3), keepdim=True)
    disp_max = torch.amax(disparity, (1, 2, 3), keepdim=True)
    return torch.clip((disparity - disp_min) / (disp_max - disp_min), 0.0, 1.0)


def _unwrap(module):
    """The model inside DDP / DataParallel, or the module itself."""
    return module.module if hasattr(module, "module") else module


def _strip_module(state_dict):
    """Removes the `module.` prefix that DDP / DataParallel put on every key."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def restore_model(model_path, backbone, decoder, optimizer=None, logger=None):
    """Loads `backbone`, `decoder` (strict=False) and `optimizer` from a MINE checkpoint, if given.

    The checkpoint is a dict with keys `backbone`, `decoder` and optionally `optimizer` (the
    original's format; keys may carry DDP's `module.` prefix). Missing entries are skipped and
    key mismatches are logged, as in the original.

    Returns:
        The loaded checkpoint dict (None when model_path is None).
    """
    logger = logger or logging.getLogger("mine")
    if model_path is None:
        logger.info("Not using pre-trained model...")
        return None
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"checkpoint {model_path} does not exist")
    state = checkpoints.load_checkpoint(model_path)
    for key, model in (("backbone", backbone), ("decoder", decoder), ("optimizer", optimizer)):
        if key not in state or model is None:
            continue
        loaded = _strip_module(state[key]) if key != "optimizer" else state[key]
        if key == "optimizer":
            model.load_state_dict(loaded)
            continue
        target = _unwrap(model)
        own = set(target.state_dict().keys())
        logger.info("[MODEL_RESTORE] missing keys in %s checkpoint: %s", key, own - set(loaded))
        logger.info("[MODEL_RESTORE] missing keys in %s model: %s", key, set(loaded) - own)
        target.load_state_dict(loaded, strict=False)
    return state


LATEST_NAME = "checkpoint_latest.pth"  # the original's name, rewritten at every save
PREVIOUS_NAME = "checkpoint_previous.pth"  # the save before it (port addition), the fallback of a restart


def find_resume_checkpoint(run_dir):
    """The checkpoint a restart in run_dir resumes: LATEST_NAME, or PREVIOUS_NAME when the latest is
    missing (a save killed between the two renames) or unreadable (truncated, corrupt).

    Returns:
        (path or None when neither exists, [paths found unreadable]).

    Raises:
        common.checkpoints.UnreadableCheckpointsError: they exist but none loads; nothing was changed.
    """
    failures = []
    for name in (LATEST_NAME, PREVIOUS_NAME):
        path = os.path.join(run_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            checkpoints.load_checkpoint(path)
        except MemoryError:
            raise
        except Exception as e:  # Whatever a truncated or foreign file raises, it is unreadable.
            failures.append((path, e))
            continue
        return path, [p for p, _ in failures]
    if failures:
        raise checkpoints.UnreadableCheckpointsError(run_dir, failures)
    return None, []


def set_aside(path):
    """Renames an unreadable file to <path>.unreadable (.1, .2, ... when taken), never deleting one; the new path."""
    target, n = path + checkpoints.UNREADABLE_SUFFIX, 0
    while os.path.lexists(target):
        n += 1
        target = f"{path}{checkpoints.UNREADABLE_SUFFIX}.{n}"
    os.rename(path, target)
    return target


def inverse(matrices):
    """torch.inverse with the original's retry on NaN (pytorch issue 47272): ...xNxN -> ...xNxN.

    Batched CUDA inverses of torch 1.8 sometimes returned NaN; the original retried up to 5 times and
    raised after that. The retries here replace only the matrices with a NaN, chosen by torch.where on
    the device: `if isnan(...).any()` would wait for the device twice per homography. A matrix still
    NaN after the retries stays NaN, and the trainer's finiteness check of the loss names the step.
    """
    result = torch.inverse(matrices)
    for _ in range(4):
        bad = torch.isnan(result).flatten(-2).any(-1)[..., None, None]
        result = torch.where(bad, torch.inverse(matrices), result)
    return result


class AverageMeter:
    """Running value and average of a scalar, printed as `name val (avg)`."""

    def __init__(self, name, fmt=":f"):
        self.name = name
        self.fmt = fmt
        self.reset()

    def reset(self):
        self.val = 0
        self.avg = 0
        self.sum = 0
        self.count = 0

    def update(self, val, n=1):
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count

    def __str__(self):
        return ("{name} {val" + self.fmt + "} ({avg" + self.fmt + "})").format(**self.__dict__)


def get_embedder(multires, i=0):
    """NeRF positional encoding of a scalar: returns (embed, out_dim), embed: [..., 1] -> [..., 1 + 2 multires].

    Layout [x, sin(x f_0), cos(x f_0), sin(x f_1), ...] with f_k = 2^k, k = 0 .. multires - 1
    (the original's Embedder with include_input and log sampling; `i` is unused, as there).
    """

    def embed(x):
        # Made on x's device each call: a host table would be copied to the device every forward.
        freqs = 2.0 ** torch.arange(multires, dtype=x.dtype, device=x.device)
        xf = x[..., None, :] * freqs[:, None]  # [..., F, d]
        periodic = torch.stack((torch.sin(xf), torch.cos(xf)), dim=-2)  # [..., F, 2, d]
        return torch.cat((x, periodic.flatten(-3)), dim=-1)

    return embed, 1 + 2 * multires
