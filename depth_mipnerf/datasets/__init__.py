"""The fork's dataset registry: dataset_dict[Config.dataset_name]."""

from depth_mipnerf.datasets.datasets import Blender, ScanNet

dataset_dict = {'blender': Blender, 'scannet': ScanNet}
