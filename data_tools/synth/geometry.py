"""Analytic primitives (sphere, oriented box, plane): ray intersection, normals, SDF, texturing.

Rays are o + t d with any nonzero d; t is the parameter along d, so a camera ray whose direction
has unit z in the camera frame returns the z-depth directly. A miss is t = inf.
"""

import dataclasses

import numpy as np

from data_tools.synth import texture

T_MIN = 1e-9  # hits closer than this are the surface a ray starts on, not a new hit


@dataclasses.dataclass(frozen=True)
class Texture:
    """Dead-leaves texture parameters of one primitive (see texture.dead_leaves)."""

    key: int
    colour: tuple
    finest: float
    levels: int
    detail_radius: float | None = None


def _first_root(a, b, c):
    """Smallest root t > T_MIN of a t^2 + 2 b t + c = 0, else inf: [...] each -> [...]."""
    disc = b * b - a * c
    # Clamp to 0 before the sqrt: misses (disc < 0) are masked out below.
    sqrt_disc = np.sqrt(np.maximum(disc, 0.0))
    near, far = (-b - sqrt_disc) / a, (-b + sqrt_disc) / a
    t = np.where(near > T_MIN, near, far)
    return np.where((disc >= 0) & (t > T_MIN), t, np.inf)


@dataclasses.dataclass(frozen=True)
class Sphere:
    """Sphere |p - center| = radius."""

    center: tuple
    radius: float
    texture: Texture

    def intersect(self, origins, dirs):
        """Ray parameter of the first hit: origins, dirs: [N, 3] -> [N]."""
        oc = origins - np.asarray(self.center)
        a = (dirs * dirs).sum(-1)
        return _first_root(a, (oc * dirs).sum(-1), (oc * oc).sum(-1) - self.radius**2)

    def sdf(self, points):
        """Signed distance: [N, 3] -> [N]."""
        return np.linalg.norm(points - np.asarray(self.center), axis=-1) - self.radius

    def normal(self, points):
        """Outward unit normal: [N, 3] -> [N, 3]."""
        return (points - np.asarray(self.center)) / self.radius

    def local(self, points):
        """(position, normal) in the primitive's texture frame: [N, 3] -> [N, 3], [N, 3]."""
        return points - np.asarray(self.center), self.normal(points)


@dataclasses.dataclass(frozen=True)
class Box:
    """Box of half extents `half` around `center`; `rotation` [3, 3] maps box axes to world."""

    center: tuple
    half: tuple
    texture: Texture
    rotation: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))

    def _to_box(self, points):
        return (points - np.asarray(self.center)) @ self.rotation

    def intersect(self, origins, dirs):
        """Ray parameter of the first hit (slab method): origins, dirs: [N, 3] -> [N]."""
        o, d = self._to_box(origins), dirs @ self.rotation
        half = np.asarray(self.half)
        # d = 0 along an axis gives +-inf slab bounds, which is what the slab test needs.
        with np.errstate(divide="ignore", invalid="ignore"):
            t0, t1 = (-half - o) / d, (half - o) / d
        t_enter = np.minimum(t0, t1).max(-1)
        t_exit = np.maximum(t0, t1).min(-1)
        t = np.where(t_enter > T_MIN, t_enter, t_exit)
        return np.where((t_enter <= t_exit) & (t > T_MIN), t, np.inf)

    def sdf(self, points):
        """Signed distance: [N, 3] -> [N]."""
        q = np.abs(self._to_box(points)) - np.asarray(self.half)
        return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(-1), 0.0)

    def local(self, points):
        """(position, normal) in the box frame: [N, 3] -> [N, 3], [N, 3]."""
        p = self._to_box(points)
        # The face is the axis where the point is relatively farthest out.
        axis = np.argmax(np.abs(p) / np.asarray(self.half), axis=-1)
        n = np.zeros_like(p)
        n[np.arange(len(p)), axis] = np.sign(p[np.arange(len(p)), axis])
        return p, n

    def normal(self, points):
        """Outward unit normal: [N, 3] -> [N, 3]."""
        return self.local(points)[1] @ self.rotation.T


@dataclasses.dataclass(frozen=True)
class Plane:
    """Plane n . p = offset, seen from the side its unit normal n points to."""

    normal_vector: tuple
    offset: float
    texture: Texture

    def intersect(self, origins, dirs):
        """Ray parameter of the hit: origins, dirs: [N, 3] -> [N]."""
        n = np.asarray(self.normal_vector)
        # Rays parallel to the plane give t = +-inf or nan, all rejected as misses.
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.offset - origins @ n) / (dirs @ n)
        return np.where(t > T_MIN, t, np.inf)

    def sdf(self, points):
        """Signed distance: [N, 3] -> [N]."""
        return points @ np.asarray(self.normal_vector) - self.offset

    def normal(self, points):
        """Unit normal: [N, 3] -> [N, 3]."""
        return np.broadcast_to(np.asarray(self.normal_vector, np.float64), points.shape)

    def local(self, points):
        """(position, normal) in a frame whose z is the normal and xy the plane: [N, 3] -> [N, 3], [N, 3]."""
        n = np.asarray(self.normal_vector, np.float64)
        helper = np.eye(3)[np.argmin(np.abs(n))]
        e1 = np.cross(helper, n)
        e1 /= np.linalg.norm(e1)
        frame = np.stack([e1, np.cross(n, e1), n], axis=-1)
        p = points @ frame - np.array([0.0, 0.0, self.offset])
        return p, np.broadcast_to(np.array([0.0, 0.0, 1.0]), p.shape)


def rotation_z(angle):
    """Rotation by `angle` radians about the z axis: [3, 3]."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_x(angle):
    """Rotation by `angle` radians about the x axis: [3, 3]."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def trace(primitives, origins, dirs):
    """First hit over all primitives: origins, dirs: [N, 3] -> (t [N], index [N], -1 = miss)."""
    t_best = np.full(len(origins), np.inf)
    index = np.full(len(origins), -1, np.int64)
    for i, prim in enumerate(primitives):
        t = prim.intersect(origins, dirs)
        closer = t < t_best
        t_best = np.where(closer, t, t_best)
        index = np.where(closer, i, index)
    return t_best, index


def scene_sdf(primitives, points):
    """Signed distance to the union of the primitives: [N, 3] -> [N]."""
    return np.min([prim.sdf(points) for prim in primitives], axis=0)


def texture_coordinates(local_points, local_normals):
    """Planar projection along the dominant normal axis: [N, 3] each -> (uv [N, 2], face [N] in 0..5)."""
    axis = np.argmax(np.abs(local_normals), axis=-1)
    uv_axes = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    uv = np.take_along_axis(local_points, uv_axes, axis=-1)
    positive = np.take_along_axis(local_normals, axis[:, None], axis=-1)[:, 0] > 0
    return uv, 2 * axis + positive


def albedo(prim, points, seed):
    """Texture colour of points on one primitive: [N, 3] -> [N, 3]."""
    uv, face = texture_coordinates(*prim.local(points))
    tex = prim.texture
    key = texture.hash32(np.uint32(seed) ^ texture.hash32(np.uint32(8 * tex.key) + face.astype(np.uint32)))
    return texture.dead_leaves(uv, key, tex.colour, tex.finest, tex.levels, detail_radius=tex.detail_radius)
