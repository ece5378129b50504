"""KITTI raw stand-in: synthetic stereo drives under the real drive names of Tulsiani et al.'s city split.

    OUT/<date>/calib_cam_to_cam.txt                           the raw release's calibration (P_rect_02, P_rect_03)
    OUT/<date>/<date>_drive_<n>_sync/image_02/data/<i:010d>.png   left colour camera
    OUT/<date>/<date>_drive_<n>_sync/image_03/data/<i:010d>.png   right colour camera

Each drive is the synthetic `forward` scene seen by a rectified stereo pair driving forward; the baseline
is BASELINE scene units (the real rig's 0.54 m is not matched: the synthetic scene has no metric scale).
The drive names are the 28 city drives Tulsiani et al. 2018 shuffle into 20 train / 4 val / 4 test
(google/layered-scene-inference lsi/data/kitti/data.py; MINE's kitti_raw splits), test drives first.
"""

import pathlib
import shutil

import imageio.v3 as iio
import numpy as np

from data_tools.standin.realestate10k import forward_views
from data_tools.synth.render import to_uint8

TEST = ['2011_09_26_drive_0001_sync', '2011_09_26_drive_0106_sync', '2011_09_26_drive_0084_sync',
        '2011_09_26_drive_0057_sync']
VAL = ['2011_09_26_drive_0048_sync', '2011_09_26_drive_0017_sync', '2011_09_26_drive_0117_sync',
       '2011_09_26_drive_0009_sync']
TRAIN = ['2011_09_26_drive_0005_sync', '2011_09_26_drive_0113_sync', '2011_09_26_drive_0060_sync',
         '2011_09_26_drive_0093_sync', '2011_09_26_drive_0013_sync', '2011_09_26_drive_0056_sync',
         '2011_09_28_drive_0001_sync', '2011_09_26_drive_0059_sync', '2011_09_26_drive_0104_sync',
         '2011_09_28_drive_0002_sync', '2011_09_26_drive_0091_sync', '2011_09_26_drive_0002_sync',
         '2011_09_26_drive_0051_sync', '2011_09_29_drive_0071_sync', '2011_09_29_drive_0026_sync',
         '2011_09_26_drive_0018_sync', '2011_09_26_drive_0014_sync', '2011_09_26_drive_0011_sync',
         '2011_09_26_drive_0095_sync', '2011_09_26_drive_0096_sync']
DRIVES = TEST + VAL + TRAIN
DEFAULT_RES = (96, 32)  # KITTI's 3:1 aspect
DEFAULT_VIEWS = 2  # stereo frames per drive
BASELINE = 0.1
LEFT_OFFSET = 0.06  # camera 02 sits left of rectified camera 0 (KITTI: 0.06 m)

CALIB = """calib_time: 09-Jan-2012 13:57:47
S_rect_02: {w:.6e} {h:.6e}
P_rect_02: {f:.6e} 0.000000e+00 {cx:.6e} {t2:.6e} 0.000000e+00 {f:.6e} {cy:.6e} 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_rect_03: {w:.6e} {h:.6e}
P_rect_03: {f:.6e} 0.000000e+00 {cx:.6e} {t3:.6e} 0.000000e+00 {f:.6e} {cy:.6e} 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
"""


def scenes(layout):
    """The 28 real city drive names (test, val, train)."""
    return list(DRIVES)


def write_drive(out, name, seed, width, height, views):
    """One drive's stereo frames (and its date's calibration file); -> the drive folder."""
    left = np.tile(np.eye(4), (views, 1, 1))
    left[:, 0, 3] = -0.1
    left[:, 2, 3] = np.arange(views) * 0.05  # driving forward
    right = left.copy()
    right[:, 0, 3] += BASELINE
    scene, renders = forward_views(seed, width, height, np.concatenate([left, right]))
    date = out / name[:10]
    drive = date / name
    shutil.rmtree(drive, ignore_errors=True)
    for camera, part in (('02', renders[:views]), ('03', renders[views:])):
        (drive / f'image_{camera}' / 'data').mkdir(parents=True)
        for n, render in enumerate(part):
            iio.imwrite(drive / f'image_{camera}' / 'data' / f'{n:010d}.png', to_uint8(render['rgb']))
    K = scene.intrinsics
    (date / 'calib_cam_to_cam.txt').write_text(CALIB.format(
        w=width, h=height, f=K[0, 0], cx=K[0, 2], cy=K[1, 2], t2=K[0, 0] * LEFT_OFFSET,
        t3=K[0, 0] * (LEFT_OFFSET - BASELINE)))
    return drive


def write(layout, out, names, res=None, views=None):
    """Writes each named drive under OUT/<date>/; -> the drive folders."""
    unknown = sorted(set(names) - set(DRIVES))
    if unknown:
        raise ValueError(f'{layout} stand-in has no drive {unknown}; its drives: {DRIVES}')
    width, height = res or DEFAULT_RES
    return [write_drive(pathlib.Path(out), name, DRIVES.index(name), width, height, views or DEFAULT_VIEWS)
            for name in names]
