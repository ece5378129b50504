"""COLMAP sparse models: the original scripts' namedtuples over pycolmap's file reading, and conversion to OpenCV cameras.

The model files are `cameras`, `images` and `points3D` with extension `.bin` or `.txt`, read by
pycolmap.Reconstruction (so COLMAP's own checks apply; data_tools.colmap.write_model writes them).
COLMAP >= 3.12 adds `rigs` and `frames` files next to them; they are not read: poses come from the
images file. Poses are world-to-camera (`x_cam = R(qvec) x_world + tvec`),
quaternions are (w, x, y, z), and the camera frame is OpenCV's: x right, y down, z forward. Pixel
coordinates put the centre of the top-left pixel at (0.5, 0.5)."""

import collections
import os
import tempfile
import warnings

import numpy as np
import pycolmap

Camera = collections.namedtuple("Camera", ["id", "model", "width", "height", "params"])
Image = collections.namedtuple(
    "Image", ["id", "qvec", "tvec", "camera_id", "name", "xys", "point3D_ids"]
)
Point3D = collections.namedtuple(
    "Point3D", ["id", "xyz", "rgb", "error", "image_ids", "point2D_idxs"]
)

# Models model_to_cameras converts: name -> (camera type, distortion key of each param after the
# focal length(s) and principal point). COLMAP's fisheye radial models distort the angle theta
# exactly as OPENCV_FISHEYE does, so they share its keys.
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_RATIONAL_KEYS = ("rational_k4", "rational_k5", "rational_k6")  # FULL_OPENCV's k4..k6
_SUPPORTED_MODELS = {
    "SIMPLE_PINHOLE": ("perspective", ()),
    "PINHOLE": ("perspective", ()),
    "SIMPLE_RADIAL": ("perspective", ("k1",)),
    "RADIAL": ("perspective", ("k1", "k2")),
    "OPENCV": ("perspective", ("k1", "k2", "p1", "p2")),
    "FULL_OPENCV": ("perspective", ("k1", "k2", "p1", "p2", "k3") + _RATIONAL_KEYS),
    "OPENCV_FISHEYE": ("fisheye", ("k1", "k2", "k3", "k4")),
    "SIMPLE_RADIAL_FISHEYE": ("fisheye", ("k1",)),
    "RADIAL_FISHEYE": ("fisheye", ("k1", "k2")),
    "SIMPLE_FISHEYE": ("fisheye", ()),
    "FISHEYE": ("fisheye", ()),
}


def qvec2rotmat(qvec):
    """Rotation matrix of a (w, x, y, z) quaternion: qvec: [..., 4] -> [..., 3, 3]."""
    qvec = np.asarray(qvec, dtype=np.float64)
    # Normalise: text files round the stored unit quaternions.
    w, x, y, z = np.moveaxis(qvec / np.linalg.norm(qvec, axis=-1, keepdims=True), -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


# ---------------------------------------------------------------------------------------------
# Files: read and written by pycolmap.Reconstruction; the functions below only convert between
# its objects and the namedtuples above.

_MODEL_FILES = ("cameras", "images", "points3D")
INVALID_POINT3D_ID = -1  # point3D_ids entry of a 2D point with no 3D point
_NO_RECORDS = {".bin": bytes(8), ".txt": b""}  # a model file holding none (binary: a zero count)
# The files a model file needs beside it: pycolmap checks images against their cameras and
# tracks against their images.
_NEEDS = {"cameras": (), "images": ("cameras",), "points3D": ("cameras", "images")}


def _check_ext(ext):
    """Raises unless ext names a model file format."""
    if ext not in _NO_RECORDS:
        raise ValueError(f"ext must be '.bin' or '.txt', got {ext!r}")


def _reconstruction(files, ext):
    """pycolmap.Reconstruction read from files {cameras|images|points3D: path}; absent ones hold none.

    The files are linked into a scratch folder under COLMAP's names, so any file name works and
    rigs/frames files beside them are not read (poses come from the images file).
    """
    missing = [p for p in files.values() if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"Incomplete COLMAP model: missing {', '.join(map(str, missing))}")
    rec = pycolmap.Reconstruction()
    with tempfile.TemporaryDirectory() as folder:
        for name in _MODEL_FILES:
            target = os.path.join(folder, name + ext)
            if name in files:
                os.symlink(os.path.abspath(files[name]), target)
            else:
                with open(target, "wb") as f:
                    f.write(_NO_RECORDS[ext])
        try:
            (rec.read_binary if ext == ".bin" else rec.read_text)(folder)
        except ValueError as error:
            raise ValueError(f"{', '.join(map(str, files.values()))}: {error}") from None
    return rec


def _cameras(rec):
    """{camera_id: Camera} of a pycolmap.Reconstruction, by id."""
    return {
        camera_id: Camera(camera_id, cam.model_name, cam.width, cam.height, np.array(cam.params))
        for camera_id, cam in sorted(rec.cameras.items())
    }


def _images(rec):
    """{image_id: Image} of a pycolmap.Reconstruction, by id."""
    images = {}
    for image_id, image in sorted(rec.images.items()):
        pose = image.cam_from_world()
        points2D = image.points2D
        xys = np.array([p.xy for p in points2D], np.float64).reshape(-1, 2)
        ids = [p.point3D_id if p.has_point3D() else INVALID_POINT3D_ID for p in points2D]
        qvec = np.roll(pose.rotation.quat, 1)  # pycolmap's (x, y, z, w) to (w, x, y, z)
        images[image_id] = Image(image_id, qvec, np.array(pose.translation), image.camera_id,
                                 image.name, xys, np.array(ids, np.int64))  # fmt: skip
    return images


def _points3D(rec):
    """{point3D_id: Point3D} of a pycolmap.Reconstruction, by id."""
    points3D = {}
    for point_id, point in sorted(rec.points3D.items()):
        track = np.array([(e.image_id, e.point2D_idx) for e in point.track.elements], np.int64)
        track = track.reshape(-1, 2)
        points3D[point_id] = Point3D(point_id, np.array(point.xyz), np.array(point.color, np.uint8),
                                     float(point.error), track[:, 0], track[:, 1])  # fmt: skip
    return points3D


_CONVERTERS = {"cameras": _cameras, "images": _images, "points3D": _points3D}


def _read_file(path, name, ext):
    """The {id: namedtuple} of one model file; the files it needs are read from beside it."""
    folder = os.path.dirname(path)
    files = {other: os.path.join(folder, other + ext) for other in _NEEDS[name]}
    files[name] = path
    return _CONVERTERS[name](_reconstruction(files, ext))


def read_cameras_binary(path):
    """Cameras of a cameras.bin file: {camera_id: Camera}."""
    return _read_file(path, "cameras", ".bin")


def read_images_binary(path):
    """Images of an images.bin file (cameras.bin beside it): {image_id: Image}."""
    return _read_file(path, "images", ".bin")


def read_points3D_binary(path):
    """3D points of a points3D.bin file (cameras.bin, images.bin beside it): {point3D_id: Point3D}."""
    return _read_file(path, "points3D", ".bin")


def read_cameras_text(path):
    """Cameras of a cameras.txt file: {camera_id: Camera}."""
    return _read_file(path, "cameras", ".txt")


def read_images_text(path):
    """Images of an images.txt file (cameras.txt beside it): {image_id: Image}."""
    return _read_file(path, "images", ".txt")


def _model_files(path, ext):
    return {name: os.path.join(path, name + ext) for name in _MODEL_FILES}


def _model_ext(path):
    """'.bin' or '.txt', whichever complete model `path` holds ('.bin' first), else None."""
    for ext in (".bin", ".txt"):
        if all(os.path.isfile(p) for p in _model_files(path, ext).values()):
            return ext
    return None


def read_model(path, ext=None):
    """(cameras, images, points3D) dicts keyed by id of the model in folder `path`.

    ext: '.bin' or '.txt'; None picks '.bin' when all three binary files exist, else '.txt'.
    """
    if ext is None:
        ext = _model_ext(path)
        if ext is None:
            missing = [p for p in _model_files(path, ".bin").values() if not os.path.isfile(p)]
            raise FileNotFoundError(
                f"No COLMAP model in {path}: missing {', '.join(missing)} (and no complete .txt model)"
            )
    _check_ext(ext)
    rec = _reconstruction(_model_files(path, ext), ext)
    return _cameras(rec), _images(rec), _points3D(rec)


def _model_size(path):
    """(registered images, 3D points) of the complete model in folder `path`."""
    ext = _model_ext(path)
    rec = _reconstruction(_model_files(path, ext), ext)
    return rec.num_reg_images(), rec.num_points3D()


def find_largest_model(sparse_dir):
    """Folder of the largest model: `sparse_dir` itself, else its numbered subfolder with the most
    registered images (ties: most 3D points, then the lowest number)."""
    if not os.path.isdir(sparse_dir):
        raise FileNotFoundError(f"COLMAP sparse folder not found: {sparse_dir}")
    if _model_ext(sparse_dir) is not None:
        return sparse_dir
    candidates = sorted(
        (int(name), os.path.join(sparse_dir, name))
        for name in os.listdir(sparse_dir)
        if name.isdigit() and _model_ext(os.path.join(sparse_dir, name)) is not None
    )
    if not candidates:
        raise FileNotFoundError(
            f"No COLMAP model (cameras, images, points3D as .bin or .txt) in {sparse_dir} "
            "or its numbered subfolders"
        )
    return max(candidates, key=lambda c: (*_model_size(c[1]), -c[0]))[1]


# ---------------------------------------------------------------------------------------------
# Conversion to per-image cameras.


def world_to_camera(image):
    """[4, 4] world-to-camera matrix of an Image."""
    w2c = np.eye(4)
    w2c[:3, :3] = qvec2rotmat(image.qvec)
    w2c[:3, 3] = image.tvec
    return w2c


def _intrinsics_and_distortion(cam):
    """(K [3, 3], distortion dict, camera type) of a Camera."""
    if cam.model not in _SUPPORTED_MODELS:
        raise ValueError(
            f"camera {cam.id}: model {cam.model} is not supported; supported: "
            f"{', '.join(_SUPPORTED_MODELS)} (undistort the images first, e.g. pycolmap.undistort_images)"
        )
    camera_type, keys = _SUPPORTED_MODELS[cam.model]
    params = np.asarray(cam.params, np.float64)
    # Params are f, cx, cy, distortion... or fx, fy, cx, cy, distortion...
    num_focal = 1 if len(params) - len(keys) == 3 else 2
    fx, fy = params[0], params[num_focal - 1]
    cx, cy = params[num_focal : num_focal + 2]
    values = dict(zip(keys, params[num_focal + 2 :].tolist()))
    # FULL_OPENCV's k4..k6 divide the radial factor (rational model), which the k1..k4
    # polynomial of the other models cannot express.
    if any(values.get(k, 0.0) for k in _RATIONAL_KEYS):
        raise ValueError(f"camera {cam.id}: FULL_OPENCV with nonzero k4..k6 is not supported")
    distortion = {k: values.get(k, 0.0) for k in _DISTORTION_KEYS}
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return K, distortion, camera_type


def model_to_cameras(cameras, images):
    """Per-image cameras of a model, images sorted by name.

    Returns a dict with
      names: [N] image names, sorted;
      camtoworlds: [N, 4, 4] float64 camera-to-world, OpenCV axes (x right, y down, z forward);
      intrinsics: [N, 3, 3] pixel-from-camera matrices K (pixel centres at +0.5);
      distortion: [N] dicts with keys k1, k2, k3, k4, p1, p2 (0 where the model has none);
        for 'fisheye' cameras k1..k4 act on the angle theta as in OPENCV_FISHEYE;
      camera_types: [N] 'perspective' or 'fisheye';
      sizes: [N, 2] int (width, height);
      camera_ids: [N] int camera id of each image.
    """
    if not images:
        raise ValueError("the COLMAP model has no images")
    ordered = sorted(images.values(), key=lambda im: im.name)
    for im in ordered:
        if im.camera_id not in cameras:
            raise KeyError(
                f"image {im.name} refers to camera {im.camera_id}, which is not in the model"
            )
    converted = {
        cam_id: _intrinsics_and_distortion(cameras[cam_id])
        for cam_id in {im.camera_id for im in ordered}
    }
    w2c = np.stack([world_to_camera(im) for im in ordered])
    return {
        "names": [im.name for im in ordered],
        "camtoworlds": np.linalg.inv(w2c),
        "intrinsics": np.stack([converted[im.camera_id][0] for im in ordered]),
        "distortion": [dict(converted[im.camera_id][1]) for im in ordered],
        "camera_types": [converted[im.camera_id][2] for im in ordered],
        "sizes": np.array(
            [(cameras[im.camera_id].width, cameras[im.camera_id].height) for im in ordered],
            dtype=np.int64,
        ),
        "camera_ids": np.array([im.camera_id for im in ordered], dtype=np.int64),
    }


def points_per_image(images, points3D):
    """{image_id: [K, 3] xyz} of the 3D points observed in each image (point3D_ids != -1).

    Observations of ids missing from points3D are skipped.
    """
    ids = np.fromiter(points3D.keys(), np.int64, len(points3D))
    xyz = np.array([pt.xyz for pt in points3D.values()], np.float64).reshape(-1, 3)
    order = np.argsort(ids)
    ids, xyz = ids[order], xyz[order]
    visible = {}
    for image_id, im in images.items():
        observed = np.asarray(im.point3D_ids, np.int64)
        observed = observed[observed != INVALID_POINT3D_ID]
        known = np.isin(observed, ids)
        if not known.all():
            warnings.warn(
                f"image {im.name}: {np.sum(~known)} observed 3D point ids are not in the model"
            )
        visible[image_id] = xyz[np.searchsorted(ids, observed[known])]
    return visible
