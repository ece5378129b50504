# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""MINE training: `python -m mine.train --config_path mine/configs/params_llff.yaml --workspace W --version V`.

Launched by start_training.sh through torchrun (or torch.distributed.launch): each rank takes its device
from LOCAL_RANK (`--local_rank` / `--local-rank` are accepted too), CUDA with NCCL or CPU with gloo.
Rank 0 writes WORKSPACE/VERSION/{params.yaml, training.log, events.out.tfevents.*, checkpoint_*.pth};
an existing checkpoint_latest.pth there is resumed.
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
from torch.utils.data.distributed import DistributedSampler
from torch.utils.tensorboard import SummaryWriter

from common import device as device_utils
from common import dist as common_dist
from mine.input_pipelines import device_batches

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
    """A yaml file as a dict; a missing file is an error naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    with open(path) as f:
        return yaml.safe_load(f) or {}


def load_config(config_path, extra_config="{}"):
    """params_default.yaml (next to config_path) <- dataset yaml <- JSON extra config; unknown keys are errors."""
    config = _read_yaml(os.path.join(os.path.dirname(config_path), "params_default.yaml"))
    for source, values in ((config_path, _read_yaml(config_path)), ("--extra_config", json.loads(extra_config))):
        unknown = [k for k in values if k not in config]
        if unknown:
            raise ValueError(f"{source}: unknown config key(s) {', '.join(map(repr, unknown))} "
                           "(not in params_default.yaml)")
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
    input_pipelines/device_batches.py), else a DataLoader (DistributedSampler when distributed, drop_last).
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
    sampler = DistributedSampler(train_dataset) if config["world_size"] > 1 else None
    train_loader = DataLoader(train_dataset, batch_size=config["data.per_gpu_batch_size"], drop_last=True,
                              num_workers=0, sampler=sampler, shuffle=sampler is None,
                              collate_fn=train_dataset.collate_fn)
    return train_loader, val_loader


def make_logger(log_file):
    """The `mine` logger writing to log_file and stdout."""
    logger = logging.getLogger("mine")
    formatter = logging.Formatter("[%(asctime)s %(filename)s] %(message)s")
    handlers = [logging.FileHandler(log_file), logging.StreamHandler(sys.stdout)]
    for handler in handlers:
        handler.setFormatter(formatter)
    logger.handlers = handlers
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


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


def train(config, workspace, version, info):
    """Sets up the run folder (rank 0), data, SynthesisTask, and trains; returns the task."""
    from mine.synthesis_task import SynthesisTask, describe_memory

    device = check_config(config, info.device)
    run_dir = os.path.join(workspace, version)
    if info.is_main:
        if not os.path.isdir(workspace):
            raise FileNotFoundError(f"workspace {workspace} does not exist")
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "params.yaml"), "w") as f:
            yaml.safe_dump(config, f)
    common_dist.barrier()

    config = preprocess_config(dict(config))
    config.update(global_rank=info.rank, local_rank=info.local_rank, world_size=info.world_size,
                  local_workspace=run_dir, device=str(device))
    if config.get("training.tf32") is not None:  # null keeps torch's defaults (cuDNN TF32 on, matmul TF32 off)
        device_utils.setup_tf32(config["training.tf32"])
    latest = os.path.join(run_dir, "checkpoint_latest.pth")
    if os.path.isfile(latest):
        config["training.pretrained_checkpoint_path"] = latest
    seed_rank(info.rank)

    logger = logging.getLogger("mine")
    if info.is_main:
        config["log_file"] = os.path.join(run_dir, "training.log")
        logger = make_logger(config["log_file"])
        logger.info("Training config: %s", config)
        config["tb_writer"] = SummaryWriter(log_dir=run_dir)
    else:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False

    train_loader, val_loader = get_dataset(config, logger)
    task = SynthesisTask(config=config, logger=logger)
    if info.is_main:  # every rank runs the same step
        logger.info(describe_memory(config, [*task.backbone.parameters(), *task.decoder.parameters()]))
    task.train(train_loader, val_loader)
    if config.get("tb_writer") is not None:
        config["tb_writer"].close()
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
    args = parser.parse_args(argv)
    config = load_config(args.config_path, args.extra_config or "{}")
    task = train(config, args.workspace, args.version, info)
    # DDP reducers hold gloo threads: drop them before leaving the process group.
    del task
    common_dist.cleanup()


if __name__ == "__main__":
    main()
