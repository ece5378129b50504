"""Training batches drawn on the device from device-resident views (port addition, `data.on_device`).

When the training views fit in device memory, their images, intrinsics, poses and sparse points are
copied there once; each batch is then drawn on the device with a generator of that device, as
NeRFDataset + step_batches.HostBatches + _collate_fn draw it on the host: a random permutation of
the source views per epoch, one target drawn uniformly among the other views of the source's scene,
and `visible_point_count` distinct sparse points of each view. Nothing is copied from the host per step.
The batches are the (src_items, tgt_items) dicts SynthesisTask.set_data reads (img, K, K_inv, xyzs;
tgt: img, K, K_inv, G_src_tgt, xyzs with the target axis of length 1).
"""

import numpy as np
import torch

from common import memory
from mine.input_pipelines import step_batches

# Share of the free device memory the views may take; the rest is for the model and its activations.
FREE_MEMORY_FRACTION = 0.25
ON_DEVICE_VALUES = ("auto", True, False)


def fits_on_device(nbytes, device):
    """Whether nbytes fit in FREE_MEMORY_FRACTION of the free memory of a CUDA device (False elsewhere).

    On the CPU the host path (step_batches.HostBatches) already reads host memory; other devices report no free memory.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return False
    return memory.fits_free_memory(nbytes, device, FREE_MEMORY_FRACTION)


def check_on_device(setting):
    """Raises ValueError naming data.on_device unless it is one of ON_DEVICE_VALUES."""
    if setting not in ON_DEVICE_VALUES:
        raise ValueError(f"data.on_device must be one of {ON_DEVICE_VALUES}, got {setting!r}")


def use_device_batches(setting, nbytes, device):
    """data.on_device: True / False force the path; "auto" asks fits_on_device. Other values: ValueError."""
    check_on_device(setting)
    return fits_on_device(nbytes, device) if setting == "auto" else setting


class DeviceBatches:
    """An epoch of training batches drawn on `device`; len() batches per epoch (per rank), set_epoch() reseeds.

    views: dict of V views, scenes contiguous: img Vx3xHxW, K, K_inv Vx3x3, G_cam_world Vx4x4 (world ->
    camera), xyzs Vx3xP (camera frame, padded), num_points V, scene_start V, scene_count V (first view and
    view count of each view's scene). Ranks draw disjoint slices of one permutation (seed + epoch);
    the target and point draws use a device generator seeded per batch from the global torch RNG.
    """

    def __init__(self, views, batch_size, visible_points_count, device, seed=0, rank=0, world_size=1):
        device = torch.device(device)
        if int(views["scene_count"].min()) < 2:
            raise ValueError("every scene needs two views or more (a source and a target)")
        if int(views["num_points"].min()) < visible_points_count:
            raise ValueError(f"a view has {int(views['num_points'].min())} sparse points, data.visible_point_count "
                             f"needs {visible_points_count}")
        self.views = {k: torch.as_tensor(v).to(device) for k, v in views.items()}
        # Camera -> world once here: each batch needs only a product of two poses.
        self.views["G_world_cam"] = torch.linalg.inv(self.views["G_cam_world"])
        padded = torch.arange(views["xyzs"].shape[2])[None] >= torch.as_tensor(views["num_points"])[:, None]
        self.views["padded"] = padded.to(device)  # VxP: True where xyzs holds no point
        self.num_views = views["img"].shape[0]
        self.batch_size = batch_size
        self.visible_points_count = visible_points_count
        self.device = device
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.generator = torch.Generator(device=device)  # seeded per batch (batch_at)

    @classmethod
    def from_nerf_dataset(cls, dataset, batch_size, device, **kwargs):
        """The views of an LLFF NeRFDataset (its images and camera-frame sparse points) on `device`."""
        if dataset.supervision_count != 1:
            raise ValueError(f"data.num_tgt_views must be 1 on the device path, got {dataset.supervision_count}")
        infos = [dataset.dataset_infos[scene][path] for scene, path in dataset.keys]
        num_points = np.array([info["xyzs"].shape[1] for info in infos])
        xyzs = np.zeros((len(infos), 3, num_points.max()), dtype=np.float32)
        for i, info in enumerate(infos):
            xyzs[i, :, :num_points[i]] = info["xyzs"]
        scene_start, scene_count = np.zeros(len(infos), np.int64), np.zeros(len(infos), np.int64)
        for indices in dataset.scene_to_indices.values():
            scene_start[indices], scene_count[indices] = min(indices), len(indices)
        views = {"img": torch.stack([info["img"] for info in infos]),
                 "K": np.stack([info["K"] for info in infos]), "K_inv": np.stack([info["K_inv"] for info in infos]),
                 "G_cam_world": np.stack([info["G_cam_world"] for info in infos]), "xyzs": xyzs,
                 "num_points": num_points, "scene_start": scene_start, "scene_count": scene_count}
        return cls(views, batch_size, dataset.visible_points_count, device, **kwargs)

    @staticmethod
    def nbytes_of_nerf_dataset(dataset):
        """Bytes the views of a NeRFDataset take on the device (images and points; the rest is small)."""
        infos = [dataset.dataset_infos[scene][path] for scene, path in dataset.keys]
        max_points = max(info["xyzs"].shape[1] for info in infos)
        return sum(info["img"].numel() * 4 for info in infos) + len(infos) * 3 * max_points * 4

    def set_epoch(self, epoch):
        """The permutation of the next epoch (the same on every rank), as DistributedSampler.set_epoch."""
        self.epoch = epoch

    def __len__(self):
        return self.num_views // self.world_size // self.batch_size

    def epoch_order(self, epoch):
        """This rank's source views of `epoch` (device indices), in drawing order."""
        return step_batches.epoch_order(self.num_views, self.seed, epoch, self.rank, self.world_size, self.device)

    def batch_at(self, order, i):
        """Batch i of an epoch's order; the target and point draws are seeded from the global torch RNG
        (one host draw), which the trainer seeds per step (step_batches.seed_step): a function of the step."""
        self.generator.manual_seed(int(torch.randint(2**62, ())))
        return self.batch(order[i * self.batch_size:(i + 1) * self.batch_size])

    def __iter__(self):
        order = self.epoch_order(self.epoch)
        for i in range(len(self)):
            yield self.batch_at(order, i)

    def _targets(self, src):
        """One view of each source's scene other than the source, uniformly: src B -> B view indices."""
        start, others = self.views["scene_start"][src], self.views["scene_count"][src] - 1
        u = torch.rand(src.shape, generator=self.generator, device=self.device)
        # min: a float32 u * others can round up to others.
        r = torch.minimum((u * others).long(), others - 1)
        return start + r + (r >= src - start).long()

    def _points(self, view):
        """visible_points_count distinct sparse points of each view, uniformly: view B -> Bx3xN."""
        scores = torch.rand(self.views["padded"][view].shape, generator=self.generator, device=self.device)
        # Padding scores 2 > any draw: the N smallest scores are N distinct real points.
        scores = scores.masked_fill(self.views["padded"][view], 2.0)
        index = scores.topk(self.visible_points_count, dim=1, largest=False).indices  # BxN
        xyzs = self.views["xyzs"][view]
        return torch.gather(xyzs, 2, index[:, None].expand(-1, 3, -1))

    def batch(self, src):
        """The collated (src_items, tgt_items) of source views src (B device indices)."""
        tgt = self._targets(src)
        v = self.views
        src_items = {"img": v["img"][src], "K": v["K"][src], "K_inv": v["K_inv"][src], "xyzs": self._points(src)}
        tgt_items = {"img": v["img"][tgt], "K": v["K"][tgt], "K_inv": v["K_inv"][tgt],
                     "G_src_tgt": torch.matmul(v["G_cam_world"][src], v["G_world_cam"][tgt]),
                     "xyzs": self._points(tgt)}
        return src_items, {k: x.unsqueeze(1) for k, x in tgt_items.items()}
