# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF's command line: the shared flags, expconf.conf defaults per experiment name, HOCON config."""

import argparse
import os

import pyparsing
from pyhocon import ConfigFactory

# inerf/ plays the role of the release's project root: it holds expconf.conf and conf/.
PROJECT_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXPCONF_PATH = os.path.join(PROJECT_ROOT, "expconf.conf")


def resolve_conf_path(path):
    """A config path as given if it exists, else relative to the project root (inerf/)."""
    if os.path.exists(path):
        return path
    rooted = os.path.join(PROJECT_ROOT, path)
    if os.path.exists(rooted):
        return rooted
    raise FileNotFoundError(f"config file {path!r} not found (looked in the working directory and in {PROJECT_ROOT})")


def load_conf(path, required=()):
    """The HOCON file at path; a syntax error or a missing required key raises ValueError naming the
    file (and the line of the error)."""
    try:
        conf = ConfigFactory.parse_file(path)
    except pyparsing.ParseBaseException as error:
        raise ValueError(f"{path}, line {error.lineno}, column {error.column}: not valid HOCON "
                         f"({error.msg}, found {error.found})") from error
    missing = [key for key in required if key not in conf]
    if missing:
        raise ValueError(f"{path}: missing required key(s) {', '.join(missing)} (see conf/default_mv.conf)")
    return conf


def parse_args(
    callback=None,
    training=False,
    default_conf="conf/default_mv.conf",
    default_expname="example",
    default_data_format="dvr",
    default_num_epochs=10000000,
    default_lr=1e-4,
    default_gamma=1.00,
    default_datadir="data",
    default_ray_batch_size=50000,
    jupyter=False,
    argv=None,
    check=None,
    required=("model", "renderer"),
):
    """(args, conf) from the command line (argv, or [] when jupyter), as the release's parse_args.

    check: called with the parsed args before any output folder is made (raises on bad settings).
    required: top-level keys the config file must have (checked, like its syntax, before any folder is made).
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("--conf", "-c", type=str, default=None)
    parser.add_argument("--resume", "-r", action="store_true", help="continue training")
    parser.add_argument("--gpu_id", type=str, default="0", help="GPU(s) to use, space delimited (CPU when none)")
    parser.add_argument("--name", "-n", type=str, default=default_expname, help="experiment name")
    parser.add_argument("--dataset_format", "-F", type=str, default=None,
                        help="Dataset format, multi_obj | dvr | dvr_gen | dvr_dtu | srn")
    parser.add_argument("--exp_group_name", "-G", type=str, default=None,
                        help="if we want to group some experiments together")
    parser.add_argument("--logs_path", type=str, default="logs", help="logs output directory")
    parser.add_argument("--checkpoints_path", type=str, default="checkpoints",
                        help="checkpoints output directory")
    parser.add_argument("--visual_path", type=str, default="visuals", help="visualization output directory")
    parser.add_argument("--epochs", type=int, default=default_num_epochs, help="number of epochs to train for")
    parser.add_argument("--lr", type=float, default=default_lr, help="learning rate")
    parser.add_argument("--gamma", type=float, default=default_gamma, help="learning rate decay factor")
    parser.add_argument("--datadir", "-D", type=str, default=None, help="Dataset directory")
    parser.add_argument("--ray_batch_size", "-R", type=int, default=default_ray_batch_size, help="Ray batch size")
    if callback is not None:
        parser = callback(parser)
    args = parser.parse_args([] if jupyter else argv)
    if check is not None:
        check(args)

    if args.exp_group_name is not None:
        args.logs_path = os.path.join(args.logs_path, args.exp_group_name)
        args.checkpoints_path = os.path.join(args.checkpoints_path, args.exp_group_name)
        args.visual_path = os.path.join(args.visual_path, args.exp_group_name)

    expconf = ConfigFactory.parse_file(EXPCONF_PATH)
    if args.conf is None:
        args.conf = expconf.get_string("config." + args.name, default_conf)
    if args.datadir is None:
        args.datadir = expconf.get_string("datadir." + args.name, default_datadir)
    args.conf = resolve_conf_path(args.conf)
    conf = load_conf(args.conf, required)

    os.makedirs(os.path.join(args.checkpoints_path, args.name), exist_ok=True)
    os.makedirs(os.path.join(args.visual_path, args.name), exist_ok=True)

    if args.dataset_format is None:
        args.dataset_format = conf.get_string("data.format", default_data_format)

    args.gpu_id = list(map(int, args.gpu_id.split()))

    print("EXPERIMENT NAME:", args.name)
    if training:
        print("CONTINUE?", "yes" if args.resume else "no")
    print("* Config file:", args.conf)
    print("* Dataset format:", args.dataset_format)
    print("* Dataset location:", args.datadir)
    return args, conf
