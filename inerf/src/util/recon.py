# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""Mesh extraction: marching cubes on a NeRF's density grid (skimage in place of PyMCubes) and OBJ export."""

import warnings

import numpy as np
import torch
import tqdm
from skimage import measure

from inerf.src.util import util


def marching_cubes(occu_net, c1=(-1, -1, -1), c2=(1, 1, 1), reso=(128, 128, 128), isosurface=50.0, sigma_idx=3,
                   eval_batch_size=100000, coarse=True, device=None):
    """(vertices (V, 3) in world units, triangles (T, 3)) of the sigma = isosurface level set in the box c1-c2.

    occu_net is called with points (N, 3) [and fake view directions towards the origin when it
    uses view directions, which makes the result approximate].
    """
    if occu_net.use_viewdirs:
        warnings.warn("Running marching cubes with fake view dirs (pointing to origin), output may be invalid")
    is_train = occu_net.training
    with torch.no_grad():
        grid = util.gen_grid(*zip(c1, c2, reso), ij_indexing=True)
        print("Evaluating sigma @", grid.size(0), "points")
        occu_net.eval()
        if device is None:
            device = next(occu_net.parameters()).device
        all_sigmas = []
        for pnts in tqdm.tqdm(torch.split(grid, eval_batch_size, dim=0)):
            kwargs = {}
            if occu_net.use_viewdirs:
                kwargs["viewdirs"] = (-pnts / torch.norm(pnts, dim=-1, keepdim=True)).to(device=device)
            outputs = occu_net(pnts.to(device=device), coarse=coarse, **kwargs)
            all_sigmas.append(outputs[..., sigma_idx].cpu())
        sigmas = torch.cat(all_sigmas, dim=0).view(*reso).numpy()
        print("Running marching cubes")
        vertices, triangles, _, _ = measure.marching_cubes(sigmas, isosurface)
        c1, c2 = np.array(c1), np.array(c2)
        vertices = vertices * (c2 - c1) / np.array(reso)  # index units -> world units, as released
    if is_train:
        occu_net.train()
    return vertices + c1, triangles


def save_obj(vertices, triangles, path, vert_rgb=None):
    """Writes an OBJ file: vertices (N, 3) [with colours vert_rgb (N, 3)] and 0-based triangles (T, 3)."""
    with open(path, "w") as file:
        if vert_rgb is None:
            file.writelines("v %.4f %.4f %.4f\n" % tuple(v[:3]) for v in vertices)
        else:
            file.writelines("v %.4f %.4f %.4f %.4f %.4f %.4f\n" % (*v[:3], *c[:3]) for v, c in zip(vertices, vert_rgb))
        file.writelines("f %d %d %d\n" % tuple(f[:3] + 1) for f in triangles)
