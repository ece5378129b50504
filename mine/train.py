# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""MINE training: `python -m mine.train --config_path mine/configs/params_llff.yaml --workspace W --version V`.

Launched by start_training.sh through torchrun (or torch.distributed.launch): each rank takes its device
from LOCAL_RANK (`--local_rank` / `--local-rank` are accepted too), CUDA with NCCL or CPU with gloo.
Rank 0 holds the folder's lock and writes WORKSPACE/VERSION/{params.yaml, training.log,
events.out.tfevents.*, checkpoint_*.pth}; an existing checkpoint_latest.pth there (or, when it does not
load, checkpoint_previous.pth) is resumed exactly. `--overwrite_params` replaces a params.yaml of another
config there (an error otherwise).
"""

import argparse
import importlib
import json
import logging
import os
import random
import sys

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from common import checkpoints
from common import device as device_utils
from common import dist as common_dist
from mine import utils
from mine.input_pipelines import device_batches, step_batches

DATASETS = ("llff", "realestate10k", "flowers", "kitti_raw", "dtu")
# data.name -> (module, Dataset class) of the pipelines the original did not release (dtu has none).
_PIPELINES = {
    "realestate10k": ("mine.input_pipelines.realestate10k.realestate10k_dataset", "RealEstate10KDataset"),
    "kitti_raw": ("mine.input_pipelines.kitti_raw.kitti_raw_dataset", "KittiRawDataset"),
    "flowers": ("mine.input_pipelines.flowers.flowers_dataset", "FlowersDataset"),
}
SEED = 0


def seed_rank(rank):
    """Seeds torch, random and numpy with SEED + rank, so that each DDP rank draws its own plane
    disparities and batches (the original seeds nothing; DDP broadcasts rank 0's initial weights)."""
    seed = common_dist.rank_seed(SEED, rank)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def _read_yaml(path):
    """A yaml file of config keys as a dict; a missing, malformed or non-mapping file is an error naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    with open(path) as f:
        try:
            values = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"config file {path} is not valid YAML: {e}") from None
    if values is not None and not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold `key: value` lines, got {type(values).__name__}")
    return values or {}


def _read_extra_config(text):
    """The --extra_config / EXTRA_CONFIG JSON object as a dict; anything else is an error naming it."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--extra_config (EXTRA_CONFIG) is not JSON ({e}): {text!r}") from None
    if not isinstance(values, dict):
        raise ValueError(f"--extra_config (EXTRA_CONFIG) must be a JSON object of config keys, got {text!r}")
    return values


# Keys whose values the released configs give in more than one type; other keys take their default's type
# (an int where the default is a float; anything where it is null).
_ALLOWED_TYPES = {"lr.decay_steps": (int, str, list), "training.gpus": (int, str, list),
                  "testing.frames_apart": (int, str), "data.on_device": (str, bool)}


def check_value_type(source, key, value, default):
    """Raises ValueError naming source and key when value's type does not fit the default's (null: any)."""
    if value is None or default is None:
        return
    allowed = _ALLOWED_TYPES.get(key) or ((int, float) if type(default) is float else (type(default),))
    if isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed):
        return
    names = " or ".join(t.__name__ for t in allowed)
    raise ValueError(f"{source}: {key} must be {names} (as in params_default.yaml), got {value!r}")


def load_config(config_path, extra_config="{}"):
    """params_default.yaml (next to config_path) <- dataset yaml <- JSON extra config.

    Unknown keys and values of the wrong type are errors naming the file (or --extra_config) and the key.
    """
    default_path = os.path.join(os.path.dirname(config_path), "params_default.yaml")
    config = _read_yaml(default_path)
    defaults = dict(config)
    for source, values in ((config_path, _read_yaml(config_path)), ("--extra_config", _read_extra_config(extra_config))):
        unknown = [k for k in values if k not in config]
        if unknown:
            raise ValueError(f"{source}: unknown config key(s) {', '.join(map(repr, unknown))} "
                             f"(not in {default_path})")
        for key, value in values.items():
            check_value_type(source, key, value, defaults[key])
        config.update(values)
    return config


def preprocess_config(config):
    """Parses the comma strings (training.gpus, lr.decay_steps) and adds the run fields; returns config."""
    for key in ("training.gpus", "lr.decay_steps"):
        if not isinstance(config[key], list):
            config[key] = [int(s) for s in str(config[key]).split(",")]
    config.setdefault("current_epoch", 0)
    config.setdefault("global_rank", 0)
    config.setdefault("local_rank", 0)
    config.setdefault("world_size", 1)
    return config


def get_dataset(config, logger):
    """Train batches and val loader of config['data.name'].

    Training: DeviceBatches on config['device'] when data.on_device picks it (llff; see
    input_pipelines/device_batches.py), else HostBatches (input_pipelines/step_batches.py: a permutation
    per epoch, ranks' disjoint slices, drop_last), both drawn as a function of (seed, rank, step).
    """
    name = config["data.name"]
    if name not in DATASETS:
        raise ValueError(f"data.name must be one of {DATASETS}, got {name!r}")
    common = {"img_size": (config["data.img_w"], config["data.img_h"]),
              "supervision_count": config["data.num_tgt_views"],
              "visible_points_count": config["data.visible_point_count"]}
    on_device = config.get("data.on_device", "auto")
    if on_device is True and name != "llff":
        raise ValueError(f"data.on_device: true needs the llff pipeline, data.name is {name!r}")
    if name == "llff":
        from mine.input_pipelines.llff.nerf_dataset import NeRFDataset

        def make(is_validation):
            # The original validates on the training scenes (their `images_*_val` folders).
            return NeRFDataset(config, logger, root=config["data.training_set_path"], is_validation=is_validation,
                               img_pre_downsample_ratio=config["data.img_pre_downsample_ratio"], **common)
    elif name in _PIPELINES:
        module_name, class_name = _PIPELINES[name]
        dataset_class = getattr(importlib.import_module(module_name), class_name)

        def make(is_validation):
            root = config["data.val_set_path" if is_validation else "data.training_set_path"]
            return dataset_class(config, logger, root=root, is_validation=is_validation, **common)
    else:
        raise NotImplementedError(f"no input pipeline for data.name={name!r} (the original released none)")

    train_dataset, val_dataset = make(False), make(True)
    val_loader = DataLoader(val_dataset, batch_size=config["data.per_gpu_batch_size"], shuffle=False,
                            drop_last=False, num_workers=0, collate_fn=val_dataset.collate_fn)
    device = config.get("device", "cpu")
    if name == "llff" and device_batches.use_device_batches(
            on_device, device_batches.DeviceBatches.nbytes_of_nerf_dataset(train_dataset), device):
        train_batches = device_batches.DeviceBatches.from_nerf_dataset(
            train_dataset, config["data.per_gpu_batch_size"], device, seed=SEED, rank=config["global_rank"],
            world_size=config["world_size"])
        return train_batches, val_loader
    train_batches = step_batches.HostBatches(train_dataset, config["data.per_gpu_batch_size"], seed=SEED,
                                             rank=config["global_rank"], world_size=config["world_size"])
    return train_batches, val_loader


def make_logger(log_file=None):
    """The `mine` logger writing to stdout, and to log_file when given."""
    logger = logging.getLogger("mine")
    formatter = logging.Formatter("[%(asctime)s %(filename)s] %(message)s")
    handlers = [logging.StreamHandler(sys.stdout)] + ([logging.FileHandler(log_file)] if log_file else [])
    for handler in handlers:
        handler.setFormatter(formatter)
    logger.handlers = handlers
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


# Keys a restart may change without --overwrite_params: how long and how safely to train, not what.
RESUMABLE_CHANGES = ("training.epochs", "training.checkpoint_every", "training.nan_check")


def check_run_dir(workspace, run_dir, config, overwrite_params):
    """What would fail in the run folder, checked before anything is written there.

    The workspace must exist, run_dir must be a writable folder (or missing), and a params.yaml already
    there must hold `config` (up to RESUMABLE_CHANGES) unless overwrite_params: eval and image_to_video
    rebuild the checkpoints' model from it.
    """
    if not os.path.isdir(workspace):
        raise FileNotFoundError(f"workspace {workspace} does not exist")
    if os.path.lexists(run_dir) and not os.path.isdir(run_dir):
        raise NotADirectoryError(f"run folder {run_dir} is a file, not a folder: pick another VERSION")
    folder = run_dir if os.path.isdir(run_dir) else workspace
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{folder} is not writable: the run folder {run_dir} cannot be written")
    params_path = os.path.join(run_dir, "params.yaml")
    if overwrite_params or not os.path.isfile(params_path):
        return
    saved = _read_yaml(params_path)
    wanted = yaml.safe_load(yaml.safe_dump(config))
    changed = sorted(k for k in set(saved) | set(wanted)
                     if k not in RESUMABLE_CHANGES and saved.get(k, "<missing>") != wanted.get(k, "<missing>"))
    if changed:
        raise ValueError(f"{params_path} was written by another config (differs in {', '.join(changed)}); "
                         f"its checkpoints need it. Train in another VERSION, or pass --overwrite_params "
                         f"(start_training.sh OVERWRITE_PARAMS=1) to replace it")


def check_config(config, device):
    """The settings that would fail later, checked before anything is written: -> the training device.

    training.device (port addition) replaces the rank's LOCAL_RANK device when set.
    """
    from mine.synthesis_task import check_image_size

    check_image_size(config["data.img_h"], config["data.img_w"])
    device_batches.check_on_device(config.get("data.on_device", "auto"))
    if config.get("training.device") is not None:
        return device_utils.resolve_device(config["training.device"], "training.device")
    return device


def train(config, workspace, version, info, overwrite_params=False):
    """Sets up the run folder (rank 0), data, SynthesisTask, and trains; returns the task.

    Nothing is written before the config, the data and the checkpoint to resume are known to be good:
    rank 0 checks the folder, takes its lock (common.checkpoints.lock_run_dir: one run per folder) and
    writes params.yaml, training.log and the TensorBoard events once the restore has succeeded.
    """
    from mine.synthesis_task import SynthesisTask, describe_memory

    device = check_config(config, info.device)
    run_dir = os.path.join(workspace, version)
    if info.is_main:
        check_run_dir(workspace, run_dir, config, overwrite_params)
    params = dict(config)
    config = preprocess_config(dict(config))
    config.update(global_rank=info.rank, local_rank=info.local_rank, world_size=info.world_size,
                  local_workspace=run_dir, device=str(device))
    if config.get("training.tf32") is not None:  # null keeps torch's defaults (cuDNN TF32 on, matmul TF32 off)
        device_utils.setup_tf32(config["training.tf32"])
    logger = logging.getLogger("mine")
    if info.is_main:
        logger = make_logger()
    else:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    train_loader, val_loader = get_dataset(config, logger)

    lock = checkpoints.lock_run_dir(run_dir) if info.is_main else None
    try:
        common_dist.barrier()
        resume, unreadable = utils.find_resume_checkpoint(run_dir)
        if resume is not None:
            config["training.pretrained_checkpoint_path"] = resume
        seed_rank(info.rank)
        task = SynthesisTask(config=config, logger=logger)
        if info.is_main:
            for path in unreadable:
                logger.warning("%s is unreadable: resumed from %s; it is kept as %s", path, resume,
                               utils.set_aside(path))
            with open(os.path.join(run_dir, "params.yaml"), "w") as f:
                yaml.safe_dump(params, f)
            config["log_file"] = os.path.join(run_dir, "training.log")
            logger = make_logger(config["log_file"])
            logger.info("Training config: %s", config)
            task.tb_writer = config["tb_writer"] = SummaryWriter(log_dir=run_dir)
            # every rank runs the same step
            logger.info(describe_memory(config, [*task.backbone.parameters(), *task.decoder.parameters()]))
        task.train(train_loader, val_loader)
    finally:
        if config.get("tb_writer") is not None:
            config["tb_writer"].close()
        if lock is not None:
            lock.release()
    return task


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # torch.distributed.launch passes --local_rank / --local-rank; torchrun sets LOCAL_RANK.
    info = common_dist.init_distributed(argv=argv)
    parser = argparse.ArgumentParser(description="MINE training")
    parser.add_argument("--config_path", default="./params.yaml", type=str)
    parser.add_argument("--workspace", type=str, required=True)
    parser.add_argument("--version", type=str, required=True)
    parser.add_argument("--extra_config", type=str, default="{}")
    parser.add_argument("--overwrite_params", action="store_true",
                        help="replace a params.yaml of another config in the run folder (its checkpoints need it)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config_path, args.extra_config or "{}")
        task = train(config, args.workspace, args.version, info, overwrite_params=args.overwrite_params)
    except BaseException as e:
        # torchrun's failure dump buries the traceback: the failing rank's error comes first, on one line.
        print(f"rank {info.rank}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise
    # DDP reducers hold gloo threads: drop them before leaving the process group.
    del task
    common_dist.cleanup()


if __name__ == "__main__":
    main()
