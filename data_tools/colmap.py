"""Camera poses for a folder of photos with COLMAP (pycolmap): features, matching, mapping, resizing.

`python -m data_tools.colmap DATA_DIR [--camera_model OPENCV] [--matcher exhaustive|sequential]
[--mapper incremental|global] [--allow_partial] [--overwrite]` reads DATA_DIR/images and writes
DATA_DIR/database.db, DATA_DIR/sparse/0 (the largest model) and DATA_DIR/images_{2,4,8}, the layout
that mip-NeRF 360 reads. Everything is built in a work folder first, so a failure leaves DATA_DIR as it was.

`write_model` writes a model of common.colmap's namedtuples (the scenes of data_tools.synth, tests).
"""

import argparse
import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import pycolmap

from common import colmap
from data_tools import images as image_io

DOWNSAMPLE_FACTORS = (2, 4, 8)


def rotmat2qvec(R):
    """(w, x, y, z) quaternion with w >= 0 of a rotation matrix: R: [..., 3, 3] -> [..., 4]."""
    R = np.asarray(R, dtype=np.float64)
    (xx, xy, xz), (yx, yy, yz), (zx, zy, zz) = np.moveaxis(R, (-2, -1), (0, 1))
    # The quaternion is the top eigenvector of this symmetric 4x4 matrix (Bar-Itzhack 2000),
    # which stays accurate for every rotation angle, unlike the trace formula.
    rows = [
        [xx + yy + zz, zy - yz, xz - zx, yx - xy],
        [zy - yz, xx - yy - zz, xy + yx, xz + zx],
        [xz - zx, xy + yx, yy - xx - zz, yz + zy],
        [yx - xy, xz + zx, yz + zy, zz - xx - yy],
    ]
    K = np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)
    qvec = np.linalg.eigh(K)[1][..., -1]
    # q and -q are the same rotation; COLMAP keeps w >= 0.
    return np.where(qvec[..., :1] < 0, -qvec, qvec)




def _to_camera(cam, path):
    """pycolmap.Camera of a Camera; errors name the model folder `path`."""
    if cam.model not in pycolmap.CameraModelId.__members__:
        raise ValueError(f"{path}: camera {cam.id}: unknown COLMAP camera model {cam.model!r}")
    camera = pycolmap.Camera(camera_id=cam.id, model=cam.model, width=cam.width, height=cam.height,
                             params=np.asarray(cam.params, np.float64))  # fmt: skip
    if not camera.verify_params():
        raise ValueError(f"{path}: camera {cam.id}: {cam.model} takes params "
                         f"({camera.params_info}), got {len(cam.params)}")  # fmt: skip
    return camera


def _to_image(im):
    """(pycolmap.Image, its cam_from_world pycolmap.Rigid3d) of an Image."""
    points2D = pycolmap.Point2DList([
        pycolmap.Point2D(xy, pycolmap.INVALID_POINT3D_ID if pid == colmap.INVALID_POINT3D_ID else pid)
        for xy, pid in zip(np.asarray(im.xys, np.float64).reshape(-1, 2), np.asarray(im.point3D_ids).tolist())
    ])  # fmt: skip
    image = pycolmap.Image(name=im.name, points2D=points2D, camera_id=im.camera_id, image_id=im.id)
    xyzw = np.roll(np.asarray(im.qvec, np.float64), -1)
    return image, pycolmap.Rigid3d(pycolmap.Rotation3d(xyzw), np.asarray(im.tvec, np.float64))


def _to_point3D(pt):
    """pycolmap.Point3D of a Point3D."""
    track = pycolmap.Track()
    for image_id, idx in zip(np.asarray(pt.image_ids).tolist(), np.asarray(pt.point2D_idxs).tolist()):
        track.add_element(image_id, idx)
    return pycolmap.Point3D(xyz=np.asarray(pt.xyz, np.float64), color=np.asarray(pt.rgb, np.uint8),
                            error=float(pt.error), track=track)  # fmt: skip


def write_model(cameras, images, points3D, path, ext=".bin"):
    """Writes the model into folder `path` (created if needed) with pycolmap, as COLMAP does:
    cameras, images, points3D and COLMAP >= 3.12's rigs and frames (one trivial rig per camera).

    pycolmap checks the model: every image's camera and every track's image and 2D point exist,
    and the 2D point of a track element observes that 3D point. Text files cannot hold an image
    name with a space.
    """
    if ext not in (".bin", ".txt"):
        raise ValueError(f"ext must be '.bin' or '.txt', got {ext!r}")
    spaced = [im.name for im in images.values() if ext == ".txt" and " " in im.name]
    if spaced:  # COLMAP's text reader ends a name at its first space.
        raise ValueError(f"{path}: image name {spaced[0]!r} has a space; write ext='.bin'")
    rec = pycolmap.Reconstruction()
    try:
        for cam in cameras.values():
            rec.add_camera_with_trivial_rig(_to_camera(cam, path))
        for im in images.values():
            rec.add_image_with_trivial_frame(*_to_image(im))
        for pt in points3D.values():
            rec.add_point3D_with_id(pt.id, _to_point3D(pt))
    except (ValueError, IndexError) as error:
        raise ValueError(f"{path}: {error}") from None
    os.makedirs(path, exist_ok=True)
    (rec.write_binary if ext == ".bin" else rec.write_text)(str(path))


class ColmapError(RuntimeError):
    """Structure from motion did not give a usable model."""


def extract_and_match(database_path, image_dir, image_names, camera_model, matcher, num_threads):
    """SIFT features with one camera shared by all images, then exhaustive or sequential matching."""
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = num_threads
    pycolmap.extract_features(
        database_path, image_dir, image_names=image_names, camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = num_threads
    if matcher == "exhaustive":
        pycolmap.match_exhaustive(database_path, matching_options=matching, device=pycolmap.Device.cpu)
    elif matcher == "sequential":
        pycolmap.match_sequential(database_path, matching_options=matching, device=pycolmap.Device.cpu)
    else:
        raise ValueError(f"unknown matcher {matcher!r}: use 'exhaustive' or 'sequential'")


def map_largest(database_path, image_dir, output_dir, mapper, num_threads, seed=0):
    """Runs the mapper and returns the reconstruction that registered the most images (or None)."""
    if mapper == "incremental":
        options = pycolmap.IncrementalPipelineOptions()
        options.num_threads = num_threads
        options.random_seed = seed
        models = pycolmap.incremental_mapping(database_path, image_dir, output_dir, options=options)
    elif mapper == "global":
        options = pycolmap.GlobalPipelineOptions()
        options.num_threads = num_threads
        options.random_seed = seed
        models = pycolmap.global_mapping(database_path, image_dir, output_dir, options=options)
    else:
        raise ValueError(f"unknown mapper {mapper!r}: use 'incremental' or 'global'")
    if not models:
        return None
    return max(models.values(), key=lambda m: (m.num_reg_images(), m.num_points3D()))


def run_colmap(data_dir, camera_model="OPENCV", matcher="exhaustive", mapper="incremental",
               allow_partial=False, overwrite=False, num_threads=-1, factors=DOWNSAMPLE_FACTORS):
    """Poses for DATA_DIR/images; returns (registered, total, mean reprojection error in pixels)."""
    data_dir = pathlib.Path(data_dir)
    paths = image_io.list_images(data_dir / "images")
    image_io.check_images(paths)
    outputs = [data_dir / "sparse", data_dir / "database.db"] + [data_dir / f"images_{f}" for f in factors]
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{data_dir} already holds a reconstruction ({', '.join(existing)}); pass --overwrite to replace it")

    work = pathlib.Path(tempfile.mkdtemp(prefix=".colmap_work_", dir=data_dir))
    try:
        database = work / "database.db"
        names = [p.name for p in paths]
        extract_and_match(database, data_dir / "images", names, camera_model, matcher, num_threads)
        (work / "mapper").mkdir()
        model = map_largest(database, data_dir / "images", work / "mapper", mapper, num_threads)
        registered = model.num_reg_images() if model is not None else 0
        if registered == 0:
            raise ColmapError(f"COLMAP registered none of the {len(paths)} images in {data_dir / 'images'}; "
                              "the photos need more overlap (views about 10 degrees apart) and texture")
        if registered < len(paths) and not allow_partial:
            posed = {image.name for image in model.images.values() if image.has_pose}
            missing = sorted(set(names) - posed)
            raise ColmapError(
                f"COLMAP registered {registered}/{len(paths)} images; not registered: "
                f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}. "
                "Try --matcher exhaustive, more overlapping photos, or --allow_partial to keep the partial model")
        error = model.compute_mean_reprojection_error()
        sparse = work / "sparse" / "0"
        sparse.mkdir(parents=True)
        model.write_binary(str(sparse))
        for factor in factors:
            image_io.write_downsampled(paths, work / f"images_{factor}", factor)
        shutil.rmtree(work / "mapper")
        for path in outputs:
            staged = work / path.name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            os.replace(staged, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return registered, len(paths), error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="scene folder holding images/")
    parser.add_argument("--camera_model", default="OPENCV",
                        help="COLMAP camera model shared by all images (OPENCV, SIMPLE_RADIAL, PINHOLE, ...)")
    parser.add_argument("--matcher", choices=["exhaustive", "sequential"], default="exhaustive")
    parser.add_argument("--mapper", choices=["incremental", "global"], default="incremental")
    parser.add_argument("--allow_partial", action="store_true",
                        help="keep the model even if some images did not register")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing sparse/ and images_N/")
    parser.add_argument("--num_threads", type=int, default=-1)
    args = parser.parse_args(argv)
    try:
        registered, total, error = run_colmap(
            args.data_dir, args.camera_model, args.matcher, args.mapper, args.allow_partial,
            args.overwrite, args.num_threads)
    except (ColmapError, FileNotFoundError, FileExistsError, ValueError) as failure:
        print(f"error: {failure}", file=sys.stderr)
        sys.exit(1)
    print(f"registered {registered}/{total} images; mean reprojection error {error:.3f} px")
    print(f"wrote {pathlib.Path(args.data_dir) / 'sparse' / '0'} and images_{{2,4,8}}")


if __name__ == "__main__":
    main()
