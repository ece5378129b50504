"""RealEstate10K stand-in: synthetic `forward` scenes under real sequence ids, in the layout MINE's loader reads.

    OUT/{train,test}/cameras/<sequence_id>.txt     the release's camera files: a URL line, then per frame
                                                   `timestamp fx fy cx cy k1 k2` (intrinsics normalised by
                                                   width / height) and the 3x4 world-to-camera matrix (OpenCV)
    OUT/{train,test}/frames/<sequence_id>/<timestamp>.png   the frames (extracted from the videos for the real set)
    OUT/{train,test}/points/<sequence_id>/<timestamp>.npy   [K, 3] world points seen in the frame (the sparse
                                                   points that set MINE's scale)

Every named sequence is written to both splits, each split with its own camera path (a dolly to the
right and slightly forward, as a walk-through); timestamps step by 33366 microseconds (29.97 fps).
The test split's evaluation-pairs file (the release's test_pairs.json format) is not written here:
data_tools does not import mine, so `python -m mine.input_pipelines.realestate10k.make_test_pairs
OUT/test OUT/test/test_pairs.json` (or mine.scripts.reproduce, which runs it when the file is missing)
makes it; it needs at least 11 frames per sequence (a target 10 frames after the source).
"""

import dataclasses
import pathlib
import shutil

import imageio.v3 as iio
import numpy as np

from data_tools.synth import build_scene, render_view
from data_tools.synth.render import to_uint8

# Sequence ids of the release's test_data_jsons/validation_pairs.json (the first eight, in file order).
SEQUENCES = ['fc966f25afa3659f', '0c5ed899789e60ad', '117335f5d67368ca', '1ed5e32330ec25e8',
             '4811a66f87b0dd6a', '069a9416dc6a373b', '3cda3a0dce5ed123', '0a7a341c08f34c24']
SPLITS = ('train', 'test')
DEFAULT_RES = (64, 48)
DEFAULT_VIEWS = 12
MIN_VIEWS = 11  # make_test_pairs needs a frame 10 after the source
POINTS_PER_FRAME = 300  # above MINE's default data.visible_point_count (256)
FRAME_STEP_US = 33366


def forward_views(seed, width, height, camtoworlds):
    """The synthetic `forward` scene `seed` rendered from OpenCV camera-to-world matrices: -> (scene, renders)."""
    scene = build_scene('forward', seed, width, height, len(camtoworlds))
    scene = dataclasses.replace(scene, camtoworlds=np.asarray(camtoworlds, np.float64))
    return scene, [render_view(scene, c2w, supersample=1) for c2w in scene.camtoworlds]


def surface_points(render, intrinsics, c2w, count, rng):
    """`count` world points on the surface seen by a render (back-projected pixel centres): -> [count, 3]."""
    depth = render['depth']
    rows, cols = np.nonzero(np.isfinite(depth))
    pick = rng.choice(len(rows), count, replace=len(rows) < count)
    rows, cols = rows[pick], cols[pick]
    z = depth[rows, cols]
    cam = np.stack([(cols + 0.5 - intrinsics[0, 2]) / intrinsics[0, 0] * z,
                    (rows + 0.5 - intrinsics[1, 2]) / intrinsics[1, 1] * z, z])
    return (c2w[:3, :3] @ cam + c2w[:3, 3:]).T


def dolly(views, start, step, forward):
    """Camera-to-world matrices moving right by `step` and forward by `forward` per frame (looking down +z)."""
    c2w = np.tile(np.eye(4), (views, 1, 1))
    c2w[:, 0, 3] = start + np.arange(views) * step
    c2w[:, 2, 3] = np.arange(views) * forward
    return c2w


def write_sequence(split_dir, seq, seed, width, height, views, path_offset):
    """One sequence's camera file, frames and points under split_dir."""
    c2ws = dolly(views, -0.15 + path_offset, 0.3 / views, 0.01)
    scene, renders = forward_views(seed, width, height, c2ws)
    K = scene.intrinsics
    rng = np.random.default_rng(seed)
    frames, points = split_dir / 'frames' / seq, split_dir / 'points' / seq
    for folder in (frames, points):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    lines = [f'https://www.youtube.com/watch?v={seq}']
    intrinsics = [K[0, 0] / width, K[1, 1] / height, K[0, 2] / width, K[1, 2] / height]
    for n, (c2w, render) in enumerate(zip(c2ws, renders)):
        ts = str(FRAME_STEP_US * n + 1_000_000)
        w2c = np.linalg.inv(c2w)
        lines.append(' '.join([ts] + [f'{v:.9f}' for v in intrinsics + [0.0, 0.0] + list(w2c[:3].ravel())]))
        iio.imwrite(frames / f'{ts}.png', to_uint8(render['rgb']))
        np.save(points / f'{ts}.npy', surface_points(render, K, c2w, POINTS_PER_FRAME, rng))
    (split_dir / 'cameras').mkdir(parents=True, exist_ok=True)
    (split_dir / 'cameras' / f'{seq}.txt').write_text('\n'.join(lines) + '\n')
    return frames


def scenes(layout):
    """The real sequence ids the stand-in writes."""
    return list(SEQUENCES)


def write(layout, out, names, res=None, views=None):
    """Writes each named sequence to OUT/train and OUT/test; -> the frame folders written."""
    unknown = sorted(set(names) - set(SEQUENCES))
    if unknown:
        raise ValueError(f'{layout} stand-in has no sequence {unknown}; its sequences: {SEQUENCES}')
    width, height = res or DEFAULT_RES
    views = views or DEFAULT_VIEWS
    if views < MIN_VIEWS:
        raise ValueError(f'{layout} stand-in: --views {views} < {MIN_VIEWS} (the 10-frame target needs 11 frames)')
    out = pathlib.Path(out)
    written = []
    for s, split in enumerate(SPLITS):
        for name in names:
            seed = SEQUENCES.index(name) + 100 * s
            written.append(write_sequence(out / split, name, seed, width, height, views, 0.05 * s))
    return written
