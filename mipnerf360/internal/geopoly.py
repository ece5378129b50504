# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Geodesic polyhedra whose vertices form the projection basis of the IPE (numpy, built once)."""

import itertools

import numpy as np


def compute_sq_dist(mat0, mat1=None):
    """Squared Euclidean distance between every column pair: mat0 [d, n], mat1 [d, m] -> [n, m]."""
    if mat1 is None:
        mat1 = mat0
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: one matrix product instead of an [n, m, d] difference.
    sq_norm0 = np.sum(mat0**2, 0)
    sq_norm1 = np.sum(mat1**2, 0)
    sq_dist = sq_norm0[:, None] + sq_norm1[None, :] - 2 * mat0.T @ mat1
    # Clamp at 0: the expansion above can round slightly below zero for (near-)equal columns.
    return np.maximum(0, sq_dist)


def compute_tesselation_weights(v):
    """Barycentric weights of the points that split a triangle's edges into v parts: [(v+1)(v+2)/2, 3]."""
    if v < 1:
        raise ValueError(f"v {v} must be >= 1")
    int_weights = [(i, j, v - (i + j)) for i in range(v + 1) for j in range(v + 1 - i)]
    return np.array(int_weights) / v


def tesselate_geodesic(base_verts, base_faces, v, eps=1e-4):
    """Vertices of a polyhedron with every face split v times, projected onto the unit sphere.

    Args:
      base_verts: [n, 3] float vertex coordinates.
      base_faces: [f, 3] int, the vertex indices of each face.
      v: int, the tesselation factor (1 keeps the polyhedron as it is).
      eps: float, squared distance under which two vertices count as one.

    Returns:
      verts: [k, 3] unique unit vertices, in order of first appearance (face by face).
    """
    if not isinstance(v, int):
        raise ValueError(f"v {v} must an integer")
    tri_weights = compute_tesselation_weights(v)
    # [f, w, 3]: the tesselated points of every face, flattened face by face.
    verts = np.einsum("wk,fkc->fwc", tri_weights, base_verts[base_faces]).reshape(-1, 3)
    verts /= np.sqrt(np.sum(verts**2, 1, keepdims=True))
    # Edge points are shared by neighbouring faces: keep the first copy of each vertex. Every
    # vertex matches itself, so argmax finds the first index within eps.
    assignment = np.argmax(compute_sq_dist(verts.T) <= eps, axis=1)
    return verts[np.unique(assignment), :]


def generate_basis(base_shape, angular_tesselation, remove_symmetries=True, eps=1e-4):
    """Unit vectors of a tesselated icosahedron or octahedron, the IPE basis: [n, 3].

    Args:
      base_shape: 'icosahedron' or 'octahedron'.
      angular_tesselation: int >= 1, the tesselation factor (1 keeps the polyhedron).
      remove_symmetries: if True keep one of each pair of opposite vertices, whose projections
        would only repeat each other negated.
      eps: float, squared distance under which two vertices are opposite.

    Returns:
      basis: [n, 3] float64 (the model uses its transpose, [3, n]).
    """
    if base_shape == "icosahedron":
        a = (np.sqrt(5) + 1) / 2
        verts = np.array(
            [(-1, 0, a), (1, 0, a), (-1, 0, -a), (1, 0, -a), (0, a, 1), (0, a, -1),
             (0, -a, 1), (0, -a, -1), (a, 1, 0), (-a, 1, 0), (a, -1, 0), (-a, -1, 0)]
        ) / np.sqrt(a + 2)  # fmt: skip
        faces = np.array(
            [(0, 4, 1), (0, 9, 4), (9, 5, 4), (4, 5, 8), (4, 8, 1), (8, 10, 1), (8, 3, 10),
             (5, 3, 8), (5, 2, 3), (2, 7, 3), (7, 10, 3), (7, 6, 10), (7, 11, 6), (11, 0, 6),
             (0, 1, 6), (6, 1, 10), (9, 0, 11), (9, 11, 2), (9, 2, 5), (7, 2, 11)]
        )  # fmt: skip
    elif base_shape == "octahedron":
        verts = np.array([(0, 0, -1), (0, 0, 1), (0, -1, 0), (0, 1, 0), (-1, 0, 0), (1, 0, 0)])
        # The faces are the vertex triples at squared distance 2 from a corner of the cube
        # [-1, 1]^3. The reshape-transpose interleaves corners, yet every row is still a face (of
        # another corner): it fixes the original's face order, hence the basis row order.
        corners = np.array(list(itertools.product([-1, 1], repeat=3)))
        pairs = np.argwhere(compute_sq_dist(corners.T, verts.T) == 2)
        faces = np.sort(np.reshape(pairs[:, 1], [3, -1]).T, 1)
    else:
        raise ValueError(f"base_shape {base_shape} not supported")
    verts = tesselate_geodesic(verts, faces, angular_tesselation)

    if remove_symmetries:
        # Keep a vertex if its antipode is itself or comes later (upper triangle of the match).
        match = compute_sq_dist(verts.T, -verts.T) < eps
        verts = verts[np.any(np.triu(match), 1), :]

    return verts[:, ::-1]
