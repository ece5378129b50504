"""mipnerf.internal.datasets on data_tools.synth scenes: splits, images, rays, batches, prefetch, errors."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from common import cameras
from data_tools.synth import build_scene, write_scene
from mipnerf.internal import datasets, utils
from mipnerf.scripts import convert_blender_data

SIZES = {"object360": (32, 32, 4), "forward": (64, 48, 12)}  # scene -> (width, height, views)
N_DOWN = 3


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """{'object360', 'forward', 'multiscale'}: folders of the synthetic scenes and the multi-scale
    conversion of object360."""
    root = tmp_path_factory.mktemp("synth")
    out = {kind: write_scene(build_scene(kind, 0, *size), root / kind) for kind, size in SIZES.items()}
    convert_blender_data.main(["--blender_dir", str(out["object360"]), "--out_dir",
                               str(root / "multiscale"), "--n_down", str(N_DOWN)])
    out["multiscale"] = root / "multiscale"
    return out


@pytest.fixture
def load():
    """load(split, folder, **config) -> Dataset; every dataset's thread is stopped afterwards."""
    made = []

    def make(split, folder, **config):
        made.append(datasets.get_dataset(split, str(folder), utils.Config(**config)))
        return made[-1]

    yield make
    for dataset in made:
        dataset.close()


def intrinsics(focal, width, height):
    return torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=torch.float64)


def assert_through_pixel_centres(origins, directions, camtoworld, focal):
    """Rays [H, W, 3] of an OpenGL camera pass through its pixel centres (x + .5, y + .5)."""
    height, width = origins.shape[:2]
    camtoworld = torch.as_tensor(camtoworld, dtype=torch.float64)
    np.testing.assert_allclose(origins, camtoworld[:3, 3].expand(height, width, 3), atol=1e-5)
    pixels, depth = cameras.project((origins + directions).double(), camtoworld,
                                    intrinsics(focal, width, height), opencv=False)
    pix_x, pix_y = cameras.pixel_coordinates(width, height)
    np.testing.assert_allclose(pixels, torch.stack([pix_x, pix_y], -1) + .5, atol=1e-4)
    assert (depth > 0).all()


def test_blender_images_and_rays(scenes, load):
    folder = scenes["object360"]
    test = load("test", folder, dataset_loader="blender")
    meta = json.loads((folder / "transforms_test.json").read_text())
    rgba = iio.imread(folder / (meta["frames"][0]["file_path"] + ".png")) / 255.
    assert test.size == 1 and test.images.shape == (1, 32, 32, 3)
    # RGBA composited on white.
    np.testing.assert_allclose(test.images[0], rgba[..., :3] * rgba[..., 3:] + 1 - rgba[..., 3:],
                               atol=1e-6)
    batch = next(test)
    np.testing.assert_array_equal(batch["pixels"], test.images[0])
    rays = batch["rays"]
    assert_through_pixel_centres(rays.origins, rays.directions, test.camtoworlds[0], test.focal)
    np.testing.assert_allclose(rays.viewdirs, cameras.normalize(rays.directions), atol=1e-6)
    np.testing.assert_allclose(rays.radii, 2 / np.sqrt(12) / test.focal, rtol=1e-5)
    assert (rays.near == 2).all() and (rays.far == 6).all() and (rays.lossmult == 1).all()

    black = load("test", folder, dataset_loader="blender", white_bkgd=False)
    np.testing.assert_allclose(black.images[0], rgba[..., :3], atol=1e-6)
    half = load("test", folder, dataset_loader="blender", factor=2)
    assert half.images.shape == (1, 16, 16, 3) and half.focal == pytest.approx(test.focal / 2)
    with pytest.raises(ValueError, match="factor=0 or 2"):
        load("test", folder, dataset_loader="blender", factor=4)
    with pytest.raises(ValueError, match="render_path"):
        load("test", folder, dataset_loader="blender", render_path=True)


def camera_of(origins, camtoworlds):
    """Index [B] of the camera whose centre each origin [B, 3] is."""
    return torch.cdist(origins.double(), torch.as_tensor(camtoworlds)[:, :3, 3].double()).argmin(-1)


def pixel_of(rays, camtoworlds, focal, width, height, cam):
    """(row, col) [B] of the pixel each world ray goes through."""
    pixels, _ = cameras.project((rays.origins + rays.directions).double(),
                                torch.as_tensor(camtoworlds)[cam].double(),
                                intrinsics(focal, width, height), opencv=False)
    col, row = pixels.floor().long().unbind(-1)
    return row, col


@pytest.mark.parametrize("batching", ["all_images", "single_image"])
def test_blender_training_batches_pair_rays_with_their_pixels(scenes, load, batching):
    folder = scenes["object360"]
    test = load("test", folder, dataset_loader="blender")
    np.random.seed(3)
    train = load("train", folder, dataset_loader="blender", batching=batching, batch_size=256)
    full = load("train", folder, dataset_loader="blender", batching="single_image")
    assert train.size == 4
    batch = next(train)
    assert batch["pixels"].shape == (256, 3) and batch["rays"].radii.shape == (256, 1)
    assert batch["rays"].origins.dtype == torch.float32
    cam = camera_of(batch["rays"].origins, full.camtoworlds)
    if batching == "single_image":
        assert (cam == cam[0]).all()
    else:
        assert len(set(cam.tolist())) > 1
    row, col = pixel_of(batch["rays"], full.camtoworlds, test.focal, 32, 32, cam)
    images = full.images.reshape(4, 32, 32, 3)
    np.testing.assert_array_equal(batch["pixels"], images[cam, row, col])

    # The batches come from numpy's global seed, whatever happens meanwhile.
    np.random.seed(3)
    again = load("train", folder, dataset_loader="blender", batching=batching, batch_size=256)
    np.testing.assert_array_equal(next(again)["pixels"], batch["pixels"])
    assert not torch.equal(next(again)["pixels"], batch["pixels"])


def test_multicam_scales(scenes, load):
    folder = scenes["multiscale"]
    train = load("train", folder, batch_size=512)
    test = load("test", folder)
    full = sum((32 >> j) ** 2 for j in range(N_DOWN))
    # all_images: every pixel of every scale of every view in one list of rays.
    assert train.size == 4 * N_DOWN and train.images.shape == (4 * full, 3)
    lossmult = train.rays.lossmult[:, 0]
    for j in range(N_DOWN):
        assert (lossmult == 4.**j).sum() == 4 * (32 >> j) ** 2
    radii = {float(m): train.rays.radii[lossmult == m] for m in lossmult.unique()}
    for j in range(N_DOWN):
        # Pixels twice as wide give cones twice as wide.
        np.testing.assert_allclose(radii[4.**j], radii[1.].mean() * 2**j, rtol=1e-5)

    # Test examples interleave the scales of each view: 32, 16, 8 pixels.
    assert test.size == N_DOWN
    meta = json.loads((folder / "metadata.json").read_text())["test"]
    for j in range(N_DOWN):
        example = next(test)
        size = 32 >> j
        assert example["pixels"].shape == (size, size, 3)
        rgba = iio.imread(folder / meta["file_path"][j]) / 255.
        np.testing.assert_allclose(example["pixels"], rgba[..., :3] * rgba[..., 3:] + 1 - rgba[..., 3:],
                                   atol=1e-6)
        rays = example["rays"]
        assert_through_pixel_centres(rays.origins, rays.directions,
                                     torch.tensor(meta["cam2world"][j]), meta["focal"][j])
        assert (rays.lossmult == 4.**j).all() and (rays.near == 2).all() and (rays.far == 6).all()
    assert next(test)["pixels"].shape == (32, 32, 3)  # and round again


def test_multicam_single_image_batches_stay_in_their_image(scenes, load):
    # The original drew pixel indices from the first image's size and failed on smaller images.
    train = load("train", scenes["multiscale"], batching="single_image", batch_size=2048)
    assert isinstance(train.images, list) and len(train.images) == 4 * N_DOWN
    for _ in range(8):
        batch = next(train)
        assert batch["pixels"].shape == (2048, 3)
        assert len(batch["rays"].lossmult.unique()) == 1
    with pytest.raises(ValueError, match="render_path"):
        load("test", scenes["multiscale"], render_path=True)


def llff_config(**overrides):
    """llff.gin's Config values (at factor 2 here)."""
    return dict(dict(dataset_loader="llff", white_bkgd=False, near=0., far=1., factor=2, llffhold=8),
                **overrides)


def test_llff_splits_and_ndc_rays(scenes, load):
    folder = scenes["forward"]
    train = load("train", folder, **llff_config())
    test = load("test", folder, **llff_config())
    names = sorted(p.name for p in (folder / "images_2").iterdir())
    # Every 8th image, in name order, is held out.
    assert train.size == 10 and test.size == 2 and test.images.shape == (2, 24, 32, 3)
    for image, name in zip(test.images, [names[0], names[8]]):
        np.testing.assert_allclose(image, iio.imread(folder / "images_2" / name) / 255., atol=1e-6)
    np.testing.assert_allclose(train.images.reshape(10, 24, 32, 3)[7],
                               iio.imread(folder / "images_2" / names[9]) / 255., atol=1e-6)
    # The recentred poses average to the identity.
    poses = torch.cat([train.camtoworlds, test.camtoworlds])
    np.testing.assert_allclose(poses[:, :3, 3].mean(0), 0, atol=1e-5)

    example = next(test)
    rays = example["rays"]
    # viewdirs: the world-space directions (not normalised), through the pixel centres.
    assert_through_pixel_centres(test.camtoworlds[0, :3, 3].expand(24, 32, 3), rays.viewdirs,
                                 test.camtoworlds[0], test.focal)
    # NDC origins on the near plane z = -1; origin + direction is the ray's point at infinity.
    np.testing.assert_allclose(rays.origins[..., 2], -1, atol=1e-5)
    d = rays.viewdirs.double()
    far_point = torch.stack([-2 * test.focal / 32 * d[..., 0] / d[..., 2],
                             -2 * test.focal / 24 * d[..., 1] / d[..., 2], torch.ones_like(d[..., 0])], -1)
    np.testing.assert_allclose(rays.origins + rays.directions, far_point, atol=1e-5)
    assert (rays.radii > 0).all() and (rays.near == 0).all() and (rays.far == 1).all()


def test_llff_render_path_and_spherify(scenes, load):
    folder = scenes["forward"]
    path = load("test", folder, **llff_config(render_path=True))
    assert path.size == 120 and path.render_poses.shape == (120, 3, 4)
    example = next(path)
    assert set(example) == {"rays"} and example["rays"].origins.shape == (24, 32, 3)

    sphere = load("test", folder, **llff_config(spherify=True, render_path=True, near=.1, far=4.))
    assert sphere.size == 120
    centres = sphere.render_poses[:, :3, 3]
    # A horizontal circle of cameras; the scene's cameras sit at unit RMS distance from its centre.
    np.testing.assert_allclose(centres[:, 2], centres[0, 2], atol=1e-6)
    np.testing.assert_allclose(centres[:, :2].norm(dim=-1), centres[0, :2].norm(), atol=1e-5)
    rays = next(sphere)["rays"]
    # World-space rays with unit viewdirs, through the render camera's pixel centres.
    assert_through_pixel_centres(rays.origins, rays.directions, sphere.render_poses[0], sphere.focal)
    np.testing.assert_allclose(rays.viewdirs.norm(dim=-1), 1, atol=1e-6)
    train = load("train", folder, **llff_config(spherify=True))
    np.testing.assert_allclose(train.camtoworlds[:, :3, 3].square().sum(-1).mean(), 1, atol=0.2)


def test_missing_data_names_the_fix(scenes, load, tmp_path):
    with pytest.raises(FileNotFoundError, match="data_tools.synth --scene object360"):
        load("train", tmp_path / "nothing", dataset_loader="blender")
    with pytest.raises(FileNotFoundError, match=r"transforms_train\.json.*data_tools\.synth"):
        load("train", tmp_path, dataset_loader="blender")
    with pytest.raises(FileNotFoundError, match=r"metadata\.json.*convert_blender_data"):
        load("train", tmp_path, dataset_loader="multicam")
    with pytest.raises(FileNotFoundError, match=r"images_4.*--scene forward"):
        load("train", tmp_path, dataset_loader="llff", factor=4)
    with pytest.raises(ValueError, match="dataset_loader"):
        load("train", scenes["object360"], dataset_loader="dtu")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load("val", scenes["object360"], dataset_loader="blender")
    with pytest.raises(NotImplementedError, match="patches"):
        load("train", scenes["object360"], dataset_loader="blender", batching="patches")


def test_prefetch_thread(scenes, load):
    train = load("train", scenes["object360"], dataset_loader="blender", batch_size=64,
                 prefetch_batches=2)
    peeked = train.peek()
    batch = next(train)
    assert peeked is batch
    assert not torch.equal(next(train)["pixels"], batch["pixels"])
    train.close()
    assert not train.is_alive()


def test_rays_map():
    rays = utils.Rays(*(torch.full((2, 3), float(i)) for i in range(7)))
    doubled = rays.map(lambda x: x * 2)
    assert isinstance(doubled, utils.Rays)
    assert [float(getattr(doubled, f)[0, 0]) for f in ("origins", "far")] == [0., 12.]
