"""Flowers light-field stand-in (Srinivasan et al. 2017): synthetic light fields under real file names.

    OUT/imgs/IMG_<id>_eslf.png           14 x 14 sub-aperture views interleaved per pixel (pixel (y, x) of view
                                         (u, v) at row 14 y + v, column 14 x + u), as the Lytro ESLF files
    OUT/dataset_list/{train,test}.list   lines `imgs/IMG_<id>_eslf.png` of the light fields written, split as
                                         MINE's release lists (TEST_IDS are from its test.list)

Only the central 8 x 8 views (u, v = 3..10, the ones MINE reads) are rendered: view i_j (u = 3 + i,
v = 3 + j) of the synthetic `forward` scene from a camera moved by cam_params.txt's translation step
(APERTURE_STEP per view, x with i, y with j, as MINE's release lists it); the outer views repeat the
nearest central one. Principal points stay at the image centre (cam_params.txt shifts them slightly).
"""

import pathlib

import imageio.v3 as iio
import numpy as np

from data_tools.standin.realestate10k import forward_views
from data_tools.synth.render import to_uint8

ANGULAR, GRID = 14, 8
OFFSET = (ANGULAR - GRID) // 2
APERTURE_STEP = 0.00128 * 10  # cam_params.txt's step, times 10 for a visible parallax in the synthetic scene
# The first light fields of MINE's dataset_list/train.list and test.list.
TRAIN_IDS = ['2189', '2190', '2220', '2221', '2227', '2228']
TEST_IDS = ['2584', '3224', '3416']
DEFAULT_RES = (32, 24)  # per view


def scenes(layout):
    """The real light-field names (IMG_<id>), test ones first."""
    return [f'IMG_{i}' for i in TEST_IDS + TRAIN_IDS]


def write_light_field(path, seed, width, height):
    """One ESLF PNG of the synthetic scene `seed`."""
    ij = [(i, j) for j in range(GRID) for i in range(GRID)]
    c2ws = np.tile(np.eye(4), (len(ij), 1, 1))
    for n, (i, j) in enumerate(ij):
        c2ws[n, :3, 3] = [(i - GRID / 2) * APERTURE_STEP, (j - GRID / 2) * APERTURE_STEP, 0.0]
    _, renders = forward_views(seed, width, height, c2ws)
    lf = np.zeros((height, ANGULAR, width, ANGULAR, 3), np.uint8)  # [y, v, x, u, c]
    for u in range(ANGULAR):
        for v in range(ANGULAR):
            i, j = min(max(u - OFFSET, 0), GRID - 1), min(max(v - OFFSET, 0), GRID - 1)
            lf[:, v, :, u] = to_uint8(renders[ij.index((i, j))]['rgb'])
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, lf.reshape(height * ANGULAR, width * ANGULAR, 3))
    return path


def write(layout, out, names, res=None, views=None):
    """Writes each named light field and the train/test lists of those written; -> the PNG paths."""
    known = scenes(layout)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f'{layout} stand-in has no light field {unknown}; its light fields: {known}')
    width, height = res or DEFAULT_RES
    out = pathlib.Path(out)
    written = [write_light_field(out / 'imgs' / f'{name}_eslf.png', known.index(name), width, height) for name in names]
    (out / 'dataset_list').mkdir(parents=True, exist_ok=True)
    for split, ids in (('train', TRAIN_IDS), ('test', TEST_IDS)):
        lines = [f'imgs/IMG_{i}_eslf.png' for i in ids if f'IMG_{i}' in names]
        (out / 'dataset_list' / f'{split}.list').write_text(''.join(line + '\n' for line in lines))
    return written
