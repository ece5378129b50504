"""data_tools.colmap recovers the poses of the procedural unbounded360 scene; bad input fails cleanly."""

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from common import colmap, llff
from data_tools import imgs2poses
from data_tools.colmap import ColmapError, run_colmap


def umeyama(source, target):
    """Similarity (s, R, t) minimising |s R source + t - target|^2; source, target: [N, 3]."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    u, d, vt = np.linalg.svd(xt.T @ xs / len(source))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / xs.var(0).sum()
    return scale, rotation, mu_t - scale * rotation @ mu_s


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The default unbounded360 scene, images only (the truth stays in scene.json)."""
    out = tmp_path_factory.mktemp("unbounded") / "scene"
    subprocess.run([sys.executable, "-m", "data_tools.synth", "--scene", "unbounded360", "--out", str(out)],
                   check=True, capture_output=True)
    colmap_dir = out.parent / "photos"
    (colmap_dir / "images").mkdir(parents=True)
    for path in sorted((out / "images").iterdir()):
        shutil.copy(path, colmap_dir / "images" / path.name)
    return out, colmap_dir


@pytest.fixture(scope="module")
def reconstructed(scene):
    truth_dir, photos = scene
    registered, total, error = run_colmap(photos, camera_model="SIMPLE_RADIAL")
    return truth_dir, photos, registered, total, error


def test_every_image_registers_with_accurate_poses(reconstructed):
    truth_dir, photos, registered, total, error = reconstructed
    assert registered == total
    assert error < 1.0
    truth = {view["name"]: np.array(view["camtoworld_opencv"])
             for view in json.loads((truth_dir / "scene.json").read_text())["views"]}
    recovered = colmap.model_to_cameras(*colmap.read_model(photos / "sparse" / "0")[:2])
    true_c2w = np.stack([truth[name] for name in recovered["names"]])
    sfm_c2w = recovered["camtoworlds"]
    scale, rotation, shift = umeyama(sfm_c2w[:, :3, 3], true_c2w[:, :3, 3])
    centres = scale * sfm_c2w[:, :3, 3] @ rotation.T + shift
    radius = np.linalg.norm(true_c2w[:, :2, 3] - true_c2w[:, :2, 3].mean(0), axis=-1).mean()
    assert np.linalg.norm(centres - true_c2w[:, :3, 3], axis=-1).max() < 0.02 * radius
    aligned = rotation @ sfm_c2w[:, :3, :3]
    cos = (np.trace(np.swapaxes(aligned, 1, 2) @ true_c2w[:, :3, :3], axis1=1, axis2=2) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1.0


def test_downsampled_folders_and_imgs2poses(reconstructed):
    _, photos, *_ = reconstructed
    full = sorted((photos / "images").iterdir())
    for factor in (2, 4, 8):
        small = sorted((photos / f"images_{factor}").iterdir())
        assert [p.name for p in small] == [p.name for p in full]
    poses, bounds, names = imgs2poses.imgs2poses(photos)
    loaded_poses, loaded_bounds = llff.load_poses_bounds(photos / "poses_bounds.npy")
    np.testing.assert_allclose(loaded_poses, poses, rtol=1e-6)
    assert names == [p.name for p in full]
    assert np.all(bounds[:, 0] > 0) and np.all(bounds[:, 1] > bounds[:, 0])


def test_existing_reconstruction_is_not_overwritten(reconstructed):
    _, photos, *_ = reconstructed
    before = (photos / "sparse" / "0" / "images.bin").read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_colmap(photos)
    assert (photos / "sparse" / "0" / "images.bin").read_bytes() == before


def test_unregistrable_images_fail_and_write_nothing(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    import imageio.v3 as iio
    for i in range(4):  # unrelated noise images: nothing can register
        iio.imwrite(tmp_path / "images" / f"{i}.png", rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    with pytest.raises(ColmapError, match="registered"):
        run_colmap(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_bad_image_folders_are_named(tmp_path):
    import imageio.v3 as iio
    with pytest.raises(FileNotFoundError, match="images"):
        run_colmap(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        run_colmap(tmp_path)
    iio.imwrite(tmp_path / "images" / "a.png", np.zeros((32, 40, 3), np.uint8))
    iio.imwrite(tmp_path / "images" / "b.png", np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="different sizes"):
        run_colmap(tmp_path)
    (tmp_path / "images" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ValueError, match="cannot read image .*b.png"):
        run_colmap(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_wrapper_script_has_the_original_interface(tmp_path):
    script = pathlib.Path(__file__).parents[2] / "mipnerf360" / "scripts" / "local_colmap_and_resize.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr
    result = subprocess.run(["bash", str(script), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1 and f"expected a folder of images at {tmp_path / 'images'}" in result.stderr
