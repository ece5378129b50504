# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF datasets: SRN, DVR (NMR ShapeNet, DTU) and multi-object scenes."""

from .data_util import ColorJitterDataset
from .DVRDataset import DVRDataset
from .MultiObjectDataset import MultiObjectDataset
from .SRNDataset import SRNDataset


def get_split_dataset(dataset_type, datadir, want_split="all", training=True, **kwargs):
    """The dataset(s) of a format: srn | multi_obj | dvr | dvr_gen | dvr_dtu.

    want_split train | val | test returns one set; anything else (all) returns (train, val, test).
    For SRN, datadir is the prefix of <datadir>_{train,val,test} (e.g. data/cars).
    """
    train_aug, flags, train_aug_flags = None, {}, {}
    if dataset_type == "srn":
        dset_class = SRNDataset
    elif dataset_type == "multi_obj":
        dset_class = MultiObjectDataset
    elif dataset_type.startswith("dvr"):
        dset_class = DVRDataset
        if dataset_type == "dvr_gen":
            flags["list_prefix"] = "gen_"
        elif dataset_type == "dvr_dtu":
            flags["list_prefix"] = "new_"
            if training:
                flags["max_imgs"] = 49
            flags["sub_format"] = "dtu"
            flags["scale_focal"] = False
            flags["z_near"] = 0.1
            flags["z_far"] = 5.0
            train_aug = ColorJitterDataset
            train_aug_flags = {"extra_inherit_attrs": ["sub_format"]}
    else:
        raise NotImplementedError("Unsupported dataset type", dataset_type)

    sets = {}
    for stage in ("train", "val", "test"):
        if want_split in (stage, "all") or want_split not in ("train", "val", "test"):
            sets[stage] = dset_class(datadir, stage=stage, **flags, **kwargs)
    if "train" in sets and train_aug is not None:
        sets["train"] = train_aug(sets["train"], **train_aug_flags)
    if want_split in sets:
        return sets[want_split]
    return sets["train"], sets["val"], sets["test"]
