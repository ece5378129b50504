"""COLMAP sparse models: binary/text I/O and conversion to OpenCV cameras (numpy only).

The model files are `cameras`, `images` and `points3D` with extension `.bin` or `.txt`, in the
classic layout that every COLMAP version reads and writes. COLMAP >= 3.12 adds `rigs` and `frames`
files next to them; they are ignored here (a model without them is read by COLMAP as one trivial
rig per camera). Poses are world-to-camera (`x_cam = R(qvec) x_world + tvec`), quaternions are
(w, x, y, z), and the camera frame is OpenCV's: x right, y down, z forward. Pixel coordinates put
the centre of the top-left pixel at (0.5, 0.5).
"""

import collections
import os
import struct
import warnings

import numpy as np

Camera = collections.namedtuple("Camera", ["id", "model", "width", "height", "params"])
Image = collections.namedtuple(
    "Image", ["id", "qvec", "tvec", "camera_id", "name", "xys", "point3D_ids"]
)
Point3D = collections.namedtuple(
    "Point3D", ["id", "xyz", "rgb", "error", "image_ids", "point2D_idxs"]
)

# name -> (model id, number of params), the ids COLMAP stores in cameras.bin.
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (0, 3),  # f, cx, cy
    "PINHOLE": (1, 4),  # fx, fy, cx, cy
    "SIMPLE_RADIAL": (2, 4),  # f, cx, cy, k
    "RADIAL": (3, 5),  # f, cx, cy, k1, k2
    "OPENCV": (4, 8),  # fx, fy, cx, cy, k1, k2, p1, p2
    "OPENCV_FISHEYE": (5, 8),  # fx, fy, cx, cy, k1, k2, k3, k4
    "FULL_OPENCV": (6, 12),  # fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, k5, k6
    "FOV": (7, 5),  # fx, fy, cx, cy, omega
    "SIMPLE_RADIAL_FISHEYE": (8, 4),  # f, cx, cy, k
    "RADIAL_FISHEYE": (9, 5),  # f, cx, cy, k1, k2
    "THIN_PRISM_FISHEYE": (10, 12),  # fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, sx1, sy1
    "RAD_TAN_THIN_PRISM_FISHEYE": (11, 16),  # fx, fy, cx, cy, k0..k5, p0, p1, s0..s3
    "SIMPLE_DIVISION": (12, 4),  # f, cx, cy, k
    "DIVISION": (13, 5),  # fx, fy, cx, cy, k
    "SIMPLE_FISHEYE": (14, 3),  # f, cx, cy
    "FISHEYE": (15, 4),  # fx, fy, cx, cy
    "EUCM": (16, 6),  # fx, fy, cx, cy, alpha, beta
    "EQUIRECTANGULAR": (17, 2),  # w, h
}
CAMERA_MODEL_NAMES = {model_id: name for name, (model_id, _) in CAMERA_MODELS.items()}

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

_MODEL_FILES = ("cameras", "images", "points3D")
INVALID_POINT3D_ID = -1  # point3D_ids entry of a 2D point with no 3D point


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


# ---------------------------------------------------------------------------------------------
# Binary files: little-endian, counts as uint64, ids as int32 (points: uint64), reals as float64.


class _Reader:
    """Sequential little-endian reader over the bytes of one file."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        self.offset = 0

    def unpack(self, fmt):
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype, count):
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.offset)
        self.offset += values.nbytes
        return values

    def string(self):
        end = self.data.index(b"\x00", self.offset)
        value = self.data[self.offset : end].decode("utf-8")
        self.offset = end + 1
        return value


def _model_name(model_id, path):
    if model_id not in CAMERA_MODEL_NAMES:
        raise ValueError(f"{path}: unknown COLMAP camera model id {model_id}")
    return CAMERA_MODEL_NAMES[model_id]


def _num_params(model, path):
    if model not in CAMERA_MODELS:
        raise ValueError(f"{path}: unknown COLMAP camera model {model!r}")
    return CAMERA_MODELS[model][1]


def read_cameras_binary(path):
    """Cameras of a cameras.bin file: {camera_id: Camera}."""
    reader = _Reader(path)
    cameras = {}
    for _ in range(reader.unpack("Q")[0]):
        camera_id, model_id, width, height = reader.unpack("iiQQ")
        model = _model_name(model_id, path)
        params = reader.array("<f8", _num_params(model, path)).copy()
        cameras[camera_id] = Camera(camera_id, model, width, height, params)
    return cameras


def read_images_binary(path):
    """Images of an images.bin file: {image_id: Image}."""
    reader = _Reader(path)
    point2d_dtype = np.dtype([("xy", "<f8", 2), ("point3D_id", "<i8")])
    images = {}
    for _ in range(reader.unpack("Q")[0]):
        image_id = reader.unpack("i")[0]
        qvec = np.array(reader.unpack("4d"))
        tvec = np.array(reader.unpack("3d"))
        camera_id = reader.unpack("i")[0]
        name = reader.string()
        points2d = reader.array(point2d_dtype, reader.unpack("Q")[0])
        images[image_id] = Image(
            image_id,
            qvec,
            tvec,
            camera_id,
            name,
            points2d["xy"].astype(np.float64),
            points2d["point3D_id"].astype(np.int64),
        )
    return images


def read_points3D_binary(path):
    """3D points of a points3D.bin file: {point3D_id: Point3D}."""
    reader = _Reader(path)
    track_dtype = np.dtype([("image_id", "<i4"), ("point2D_idx", "<i4")])
    points3D = {}
    for _ in range(reader.unpack("Q")[0]):
        point_id = reader.unpack("Q")[0]
        xyz = np.array(reader.unpack("3d"))
        rgb = np.array(reader.unpack("3B"), dtype=np.uint8)
        error = reader.unpack("d")[0]
        track = reader.array(track_dtype, reader.unpack("Q")[0])
        points3D[point_id] = Point3D(
            point_id,
            xyz,
            rgb,
            error,
            track["image_id"].astype(np.int64),
            track["point2D_idx"].astype(np.int64),
        )
    return points3D


def write_cameras_binary(cameras, path):
    """Writes {camera_id: Camera} to a cameras.bin file."""
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(cameras)))
        for cam in cameras.values():
            params = np.asarray(cam.params, dtype="<f8")
            if params.size != _num_params(cam.model, path):
                raise ValueError(
                    f"camera {cam.id}: {cam.model} takes {_num_params(cam.model, path)} params, got {params.size}"
                )
            f.write(
                struct.pack("<iiQQ", cam.id, CAMERA_MODELS[cam.model][0], cam.width, cam.height)
            )
            f.write(params.tobytes())


def write_images_binary(images, path):
    """Writes {image_id: Image} to an images.bin file."""
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(images)))
        for im in images.values():
            f.write(struct.pack("<i4d3di", im.id, *im.qvec, *im.tvec, im.camera_id))
            f.write(im.name.encode("utf-8") + b"\x00")
            points2d = np.empty(len(im.xys), dtype=[("xy", "<f8", 2), ("point3D_id", "<i8")])
            points2d["xy"] = np.reshape(im.xys, (-1, 2))
            points2d["point3D_id"] = im.point3D_ids
            f.write(struct.pack("<Q", len(points2d)) + points2d.tobytes())


def write_points3D_binary(points3D, path):
    """Writes {point3D_id: Point3D} to a points3D.bin file."""
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(points3D)))
        for pt in points3D.values():
            f.write(struct.pack("<Q3d3Bd", pt.id, *pt.xyz, *np.asarray(pt.rgb, np.uint8), pt.error))
            track = np.empty(len(pt.image_ids), dtype=[("image_id", "<i4"), ("point2D_idx", "<i4")])
            track["image_id"] = pt.image_ids
            track["point2D_idx"] = pt.point2D_idxs
            f.write(struct.pack("<Q", len(track)) + track.tobytes())


# ---------------------------------------------------------------------------------------------
# Text files: one record per line (images: two lines), '#' starts a comment line.


def _data_lines(path):
    """Lines of a COLMAP text file without its comment lines (empty lines are kept)."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f.read().splitlines() if not line.startswith("#")]


def _format(values):
    """Space-separated numbers; repr gives the shortest text that reads back the same float."""
    return " ".join(
        repr(float(v)) if isinstance(v, float | np.floating) else str(v) for v in values
    )


def read_cameras_text(path):
    """Cameras of a cameras.txt file: {camera_id: Camera}."""
    cameras = {}
    for line in filter(None, _data_lines(path)):
        camera_id, model, width, height, *params = line.split()
        params = np.array(params, dtype=np.float64)
        if params.size != _num_params(model, path):
            raise ValueError(f"{path}: camera {camera_id} ({model}) has {params.size} params")
        cameras[int(camera_id)] = Camera(int(camera_id), model, int(width), int(height), params)
    return cameras


def read_images_text(path):
    """Images of an images.txt file: {image_id: Image}."""
    lines = _data_lines(path)
    while lines and not lines[-1]:
        lines.pop()
    # Each image has a header and a points line; the points line is blank for an image without
    # points, so the last one may have been dropped just above.
    lines += [""] * (len(lines) % 2)
    images = {}
    for header, points_line in zip(lines[0::2], lines[1::2]):
        # The name is the last field and may contain spaces.
        image_id, *pose, camera_id, name = header.split(maxsplit=9)
        pose = np.array(pose, dtype=np.float64)
        points2d = np.array(points_line.split(), dtype=np.float64).reshape(-1, 3)
        images[int(image_id)] = Image(
            int(image_id),
            pose[:4],
            pose[4:],
            int(camera_id),
            name,
            points2d[:, :2],
            points2d[:, 2].astype(np.int64),
        )
    return images


def read_points3D_text(path):
    """3D points of a points3D.txt file: {point3D_id: Point3D}."""
    points3D = {}
    for line in filter(None, _data_lines(path)):
        fields = line.split()
        point_id = int(fields[0])
        track = np.array(fields[8:], dtype=np.int64).reshape(-1, 2)
        points3D[point_id] = Point3D(
            point_id,
            np.array(fields[1:4], dtype=np.float64),
            np.array(fields[4:7], dtype=np.uint8),
            float(fields[7]),
            track[:, 0],
            track[:, 1],
        )
    return points3D


def write_cameras_text(cameras, path):
    """Writes {camera_id: Camera} to a cameras.txt file."""
    lines = ["# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]", f"# Number of cameras: {len(cameras)}"]
    for cam in cameras.values():
        if len(cam.params) != _num_params(cam.model, path):
            raise ValueError(
                f"camera {cam.id}: {cam.model} takes {_num_params(cam.model, path)} params, got {len(cam.params)}"
            )
        lines.append(
            _format([cam.id, cam.model, cam.width, cam.height, *np.asarray(cam.params, np.float64)])
        )
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_images_text(images, path):
    """Writes {image_id: Image} to an images.txt file."""
    lines = [
        "# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME",
        "# POINTS2D[] as (X Y POINT3D_ID)",
        f"# Number of images: {len(images)}",
    ]
    for im in images.values():
        pose = np.concatenate([im.qvec, im.tvec]).astype(np.float64)
        lines.append(_format([im.id, *pose, im.camera_id, im.name]))
        xys = np.reshape(np.asarray(im.xys, np.float64), (-1, 2))
        lines.append(_format(v for xy, pid in zip(xys, im.point3D_ids) for v in (*xy, int(pid))))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_points3D_text(points3D, path):
    """Writes {point3D_id: Point3D} to a points3D.txt file."""
    lines = [
        "# POINT3D_ID X Y Z R G B ERROR TRACK[] as (IMAGE_ID POINT2D_IDX)",
        f"# Number of points: {len(points3D)}",
    ]
    for pt in points3D.values():
        track = np.stack([pt.image_ids, pt.point2D_idxs], axis=-1).astype(np.int64).ravel()
        rgb = np.asarray(pt.rgb, np.uint8).tolist()
        lines.append(
            _format(
                [pt.id, *np.asarray(pt.xyz, np.float64), *rgb, float(pt.error), *track.tolist()]
            )
        )
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


_READERS = {
    ".bin": (read_cameras_binary, read_images_binary, read_points3D_binary),
    ".txt": (read_cameras_text, read_images_text, read_points3D_text),
}
_WRITERS = {
    ".bin": (write_cameras_binary, write_images_binary, write_points3D_binary),
    ".txt": (write_cameras_text, write_images_text, write_points3D_text),
}


def _model_paths(path, ext):
    return [os.path.join(path, name + ext) for name in _MODEL_FILES]


def _model_ext(path):
    """'.bin' or '.txt', whichever complete model `path` holds ('.bin' first), else None."""
    for ext in (".bin", ".txt"):
        if all(os.path.isfile(p) for p in _model_paths(path, ext)):
            return ext
    return None


def read_model(path, ext=None):
    """(cameras, images, points3D) dicts keyed by id of the model in folder `path`.

    ext: '.bin' or '.txt'; None picks '.bin' when all three binary files exist, else '.txt'.
    """
    if ext is None:
        ext = _model_ext(path)
        if ext is None:
            missing = [p for p in _model_paths(path, ".bin") if not os.path.isfile(p)]
            raise FileNotFoundError(
                f"No COLMAP model in {path}: missing {', '.join(missing)} (and no complete .txt model)"
            )
    if ext not in _READERS:
        raise ValueError(f"ext must be '.bin' or '.txt', got {ext!r}")
    paths = _model_paths(path, ext)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"Incomplete COLMAP model: missing {', '.join(missing)}")
    return tuple(read(p) for read, p in zip(_READERS[ext], paths))


def write_model(cameras, images, points3D, path, ext=".bin"):
    """Writes the three model files into folder `path` (created if needed)."""
    if ext not in _WRITERS:
        raise ValueError(f"ext must be '.bin' or '.txt', got {ext!r}")
    os.makedirs(path, exist_ok=True)
    for write, items, p in zip(_WRITERS[ext], (cameras, images, points3D), _model_paths(path, ext)):
        write(items, p)


def _model_size(path):
    """(registered images, 3D points) of the model in `path`; binary files only read the counts."""
    ext = _model_ext(path)
    if ext == ".bin":
        return tuple(
            _Reader(os.path.join(path, name + ".bin")).unpack("Q")[0]
            for name in ("images", "points3D")
        )
    return len(read_images_text(os.path.join(path, "images.txt"))), len(
        list(filter(None, _data_lines(os.path.join(path, "points3D.txt"))))
    )


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
