"""mipnerf360.internal.geopoly beyond the golden cases: geometry of the basis."""

import numpy as np
import pytest

from mipnerf360.internal import geopoly


def test_compute_sq_dist_matches_brute_force_and_defaults_to_itself():
    rng = np.random.default_rng(0)
    mat0, mat1 = rng.normal(size=(3, 9)), rng.normal(size=(3, 5))
    brute = np.sum((mat0[:, :, None] - mat1[:, None, :]) ** 2, axis=0)
    np.testing.assert_allclose(geopoly.compute_sq_dist(mat0, mat1), brute, rtol=1e-12, atol=1e-12)
    self_dist = geopoly.compute_sq_dist(mat0)
    np.testing.assert_array_equal(self_dist, geopoly.compute_sq_dist(mat0, mat0))
    assert np.all(self_dist >= 0)


@pytest.mark.parametrize("v", [1, 2, 5])
def test_tesselation_weights_are_barycentric(v):
    w = geopoly.compute_tesselation_weights(v)
    assert w.shape == ((v + 1) * (v + 2) // 2, 3)
    np.testing.assert_allclose(w.sum(1), 1)
    assert len({tuple(row) for row in np.round(w * v).astype(int)}) == len(w)


def test_tesselation_rejects_bad_factors():
    with pytest.raises(ValueError):
        geopoly.compute_tesselation_weights(0)
    with pytest.raises(ValueError):
        geopoly.tesselate_geodesic(np.eye(3), np.array([[0, 1, 2]]), 2.0)
    with pytest.raises(ValueError):
        geopoly.generate_basis("cube", 1)


@pytest.mark.parametrize(
    "base_shape, v, n_all",
    # A geodesic polyhedron of factor v has 10 v^2 + 2 (icosahedron) or 4 v^2 + 2 (octahedron) vertices.
    [
        ("icosahedron", 1, 12),
        ("icosahedron", 2, 42),
        ("icosahedron", 3, 92),
        ("octahedron", 1, 6),
        ("octahedron", 4, 66),
    ],
)
def test_basis_is_unit_vectors_one_per_antipodal_pair(base_shape, v, n_all):
    full = geopoly.generate_basis(base_shape, v, remove_symmetries=False)
    assert full.shape == (n_all, 3)
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1, rtol=1e-12)
    basis = geopoly.generate_basis(base_shape, v)
    assert basis.shape == (n_all // 2, 3)
    # No two kept vectors are equal or opposite.
    dots = np.abs(basis @ basis.T) - np.eye(len(basis))
    assert np.all(dots < 1 - 1e-6)
