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


def test_euler_perturbation_is_the_released_composition():
    pose = np.eye(4)
    start = utils.euler_perturbation(pose, 10., 0., 0., 0.5)
    np.testing.assert_allclose(start, utils.trans_t(0.5) @ utils.rot_phi(np.deg2rad(10.)))


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


@pytest.mark.parametrize("name", ["blender", "llff", "nerf_blender", "nerf_llff", "salykovaa_lego", "demo"])
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
        assert (config.max_rotation_deg, config.max_translation, config.unit_axis) == (40., 0.2, True)
        assert (config.n_test_images, config.n_trials) == (5, 5)
