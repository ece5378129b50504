"""Stand-in datasets in the published layouts and with the real scene names, made from the synthetic
scenes, so every `make reproduce-<paper>` command can run end to end without the real data.

    python -m data_tools.standin LAYOUT --out DIR [--scenes a,b] [--res WxH] [--views N]

Each layout is a module of this package with scenes(layout) (the real names) and
write(layout, out, scenes, res, views) -> the scene folders it wrote.
"""

import importlib

LAYOUTS = {
    '360_v2': 'data_tools.standin.synth_layouts',  # mip-NeRF 360: <scene>/images{,_2,_4,_8}, sparse/0
    'nerf_synthetic': 'data_tools.standin.synth_layouts',  # Blender: <scene>/transforms_*.json, depth/
    'nerf_llff_data': 'data_tools.standin.synth_layouts',  # LLFF: <scene>/images*, poses_bounds.npy, sparse/0
    'realestate10k': 'data_tools.standin.realestate10k',
    'kitti_raw': 'data_tools.standin.kitti_raw',
    'flowers': 'data_tools.standin.flowers',
    'srn_cars': 'data_tools.standin.srn_cars',
}


def layout(name):
    """The module that writes layout `name`."""
    if name not in LAYOUTS:
        raise ValueError(f'unknown layout {name!r}; known: {sorted(LAYOUTS)}')
    return importlib.import_module(LAYOUTS[name])
