"""inerf_helpers / utils behaviour beyond the golden cases: the exponential map, the perturbation
protocol, the error metrics, the observation corruptions."""

import numpy as np
import pytest
import torch

from inerf import inerf_helpers, utils


def _set(model, w, v, theta):
    with torch.no_grad():
        model.w.copy_(torch.as_tensor(w, dtype=torch.float32))
        model.v.copy_(torch.as_tensor(v, dtype=torch.float32))
        model.theta.copy_(torch.as_tensor(theta, dtype=torch.float32))


def test_vec2ss_matrix_is_the_cross_product():
    a, b = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(inerf_helpers.vec2ss_matrix(a) @ b, torch.linalg.cross(a, b))


def test_unit_axis_keeps_the_rotation_orthonormal_and_the_release_does_not():
    x = torch.eye(4)
    unit, free = inerf_helpers.camera_transf(unit_axis=True), inerf_helpers.camera_transf()
    for model in (unit, free):
        _set(model, [0.3, -1.2, 2.0], [0.1, 0.2, -0.3], 0.7)
    r_unit, r_free = unit(x)[:3, :3].detach().numpy(), free(x)[:3, :3].detach().numpy()
    assert utils.orthonormality_error(r_unit) < 1e-5
    assert abs(np.linalg.det(r_unit) - 1) < 1e-5
    assert utils.orthonormality_error(r_free) > 0.1


def test_unit_axis_is_the_rodrigues_rotation_and_left_multiplies():
    model = inerf_helpers.camera_transf(unit_axis=True)
    axis = np.array([1., 2., -2.]) / 3.
    _set(model, 5 * axis, [0., 0., 0.], 0.4)
    start = torch.as_tensor(utils.rot_phi(0.3) @ utils.trans_t(4.), dtype=torch.float32)
    expected = np.eye(4)
    expected[:3, :3] = utils.axis_angle_matrix(axis, 0.4)
    np.testing.assert_allclose(model(start).detach().numpy(), expected @ start.numpy(), atol=1e-5)


def test_pure_screw_translation_matches_the_closed_form():
    # With w along z, the screw moves theta * v_z along z and rotates the xy part of v.
    model = inerf_helpers.camera_transf(unit_axis=True)
    _set(model, [0., 0., 1.], [0., 0., 0.5], 0.3)
    np.testing.assert_allclose(model(torch.eye(4))[:3, 3].detach().numpy(), [0., 0., 0.15], atol=1e-6)


def test_random_perturbation_respects_the_ranges():
    rng = np.random.default_rng(0)
    pose = np.eye(4)
    pose[:3, 3] = [0., -4., 1.]
    for _ in range(50):
        start, angle, translation = utils.random_perturbation(pose, rng, 15., 0.1)
        assert abs(angle) <= 15. and np.all(np.abs(translation) <= 0.1)
        assert utils.rotation_error_deg(start[:3, :3], pose[:3, :3]) == pytest.approx(abs(angle), abs=1e-4)
        assert utils.orthonormality_error(start[:3, :3]) < 1e-9


def test_random_perturbation_pivots():
    """'world' swings the camera centre about the origin with the rotation; 'camera' moves it by t alone."""
    pose = np.eye(4)
    pose[:3, 3] = [0., -4., 1.]
    world, angle, t = utils.random_perturbation(pose, np.random.default_rng(1), 40., 0.2, 'world')
    camera, angle_c, t_c = utils.random_perturbation(pose, np.random.default_rng(1), 40., 0.2, 'camera')
    assert angle == angle_c and np.array_equal(t, t_c)
    np.testing.assert_allclose(camera[:3, :3], world[:3, :3])
    np.testing.assert_allclose(camera[:3, 3], pose[:3, 3] + t, atol=1e-12)
    np.testing.assert_allclose(world[:3, 3], world[:3, :3] @ pose[:3, :3].T @ pose[:3, 3] + t, atol=1e-12)
    assert np.linalg.norm(world[:3, 3] - pose[:3, 3]) > np.linalg.norm(t) + 0.5  # the swing
    with pytest.raises(ValueError, match="perturbation_pivot"):
        utils.random_perturbation(pose, np.random.default_rng(1), 40., 0.2, 'object')


def test_euler_perturbation_is_the_released_composition():
    pose = np.eye(4)
    pose[:3, 3] = [1., 2., 3.]
    rot = utils.rot_phi(np.deg2rad(10.)) @ utils.rot_theta(np.deg2rad(5.)) @ utils.rot_psi(np.deg2rad(3.))
    blender = utils.euler_perturbation(pose, 10., 5., 3., 0.5)
    np.testing.assert_allclose(blender, utils.trans_t(0.5) @ rot @ pose)
    llff = utils.euler_perturbation(pose, 10., 5., 3., 0.5, 'llff')  # salykovaa's load_llff_data order
    np.testing.assert_allclose(llff, rot @ utils.trans_t(0.5) @ pose)
    assert not np.allclose(llff, blender)


def test_obs_imgs_frame_as_salykovaas_load_blender(tmp_path):
    """obs_imgs/transforms.json frame N: composited on white, halved by area, truncated to uint8."""
    import json

    import cv2
    import imageio.v2 as imageio

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (8, 6, 4), dtype=np.uint8)
    imageio.imwrite(tmp_path / "1.png", rgba)
    poses = [np.eye(4).tolist(), (np.eye(4) * 2).tolist()]
    (tmp_path / "transforms.json").write_text(json.dumps(
        {"camera_angle_x": 0.5, "frames": [{"file_path": str(i), "transform_matrix": p} for i, p in enumerate(poses)]}))
    img, pose, hwf = utils.load_obs_img(str(tmp_path), 1, half_res=True, white_bkgd=True)
    f = rgba.astype(np.float32) / 255.
    composite = f[..., :3] * f[..., 3:] + (1. - f[..., 3:])
    expected = np.asarray(cv2.resize(composite, (3, 4), interpolation=cv2.INTER_AREA) * 255, np.uint8) / 255.
    np.testing.assert_allclose(img, expected, atol=1e-7)
    np.testing.assert_array_equal(pose, np.eye(4) * 2)
    assert hwf == [4, 3, pytest.approx(.5 * 6 / np.tan(.25) / 2)]
    with pytest.raises(ValueError, match="has 2 frames"):
        utils.load_obs_img(str(tmp_path), 2)
    with pytest.raises(FileNotFoundError, match="0.png"):
        utils.load_obs_img(str(tmp_path), 0)


def test_rotation_error_measures_the_nearest_rotation():
    r = utils.axis_angle_matrix(np.array([0., 1., 0.]), np.deg2rad(7.))
    assert utils.rotation_error_deg(r, np.eye(3)) == pytest.approx(7., abs=1e-6)
    assert utils.rotation_error_deg(1.3 * r, np.eye(3)) == pytest.approx(7., abs=1e-6)
    assert utils.translation_error([1., 2., 2.], [0., 0., 0.]) == pytest.approx(3.)


def test_brightness_as_released_divides_twice_and_the_fix_does_not():
    img = np.full((4, 4, 3), 0.5, np.float32)
    rng = np.random.default_rng(0)
    released = utils.corrupt_observation(img, utils.Config(delta_brightness=0.2), rng)
    fixed = utils.corrupt_observation(img, utils.Config(delta_brightness=0.2, fix_brightness=True), rng)
    np.testing.assert_allclose(fixed, 0.7, atol=1e-5)
    assert released.max() < 0.25


def test_unknown_noise_is_a_clear_error():
    with pytest.raises(ValueError, match="Config.noise"):
        utils.corrupt_observation(np.zeros((2, 2, 3), np.float32), utils.Config(noise='speckle'),
                                  np.random.default_rng(0))


SALYKOVAA = ["chair", "ficus", "lego", "mic", "fern", "flower", "fortress", "horns", "pinecone", "vasedeck"]


@pytest.mark.parametrize("name", ["blender", "llff", "nerf_blender", "nerf_llff", "demo"]
                         + [f"salykovaa_{scene}" for scene in SALYKOVAA])
def test_every_config_parses_and_the_protocol_has_the_paper_defaults(name):
    import pathlib

    import gin

    path = pathlib.Path(__file__).parents[2] / "inerf" / "configs" / f"{name}.gin"
    gin.clear_config()
    try:
        config = utils.parse_config([str(path)])
    finally:
        gin.clear_config()
    assert config.lrate == 0.01 and config.lrate_decay_rate == 0.8 and config.lrate_decay_steps == 100
    if name in ("blender", "llff"):
        assert (config.batch_size, config.n_steps, config.sampling_strategy) == (2048, 300, "interest_regions")
        # arXiv 2012.05877v3 p. 5: [-40, 40] degrees about a random axis; [-0.2, 0.2] per axis on the
        # synthetic scenes, [-0.1, 0.1] on LLFF (see the README's evaluation protocol for the sources).
        assert (config.max_rotation_deg, config.unit_axis) == (40., True)
        assert config.max_translation == {"blender": 0.2, "llff": 0.1}[name]
        assert (config.n_test_images, config.n_trials, config.perturbation_pivot) == (5, 5, "world")
    if name.startswith("salykovaa_"):
        # Every salykovaa config is a single Euler-perturbed estimate of its own scene.
        scene = name.split("_", 1)[1]
        assert (config.model_name, config.perturbation, config.unit_axis) == (scene, "euler", False)
        assert config.obs_img_num is not None and config.data_dir.endswith("/" + scene)
        assert config.dataset_type == ("blender" if scene in SALYKOVAA[:4] else "llff")
