# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""The fork's dataset registry: dataset_dict[Config.dataset_name]."""

from depth_mipnerf.datasets.datasets import Blender, ScanNet

dataset_dict = {'blender': Blender, 'scannet': ScanNet}
