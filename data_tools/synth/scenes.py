"""The three scene presets: geometry, lighting and camera rigs.

Geometry is fixed per preset; the seed changes the textures and their colours. Camera-to-world
matrices are OpenCV's (x right, y down, z forward). object360 and unbounded360 use a z-up world
(as Blender); forward's world is the OpenCV frame of a camera at the rig centre (y down, z forward).
"""

import colorsys
import dataclasses
import math

import numpy as np

from data_tools.synth.geometry import Box, Plane, Sphere, Texture, rotation_x, rotation_z

SCENES = ("object360", "forward", "unbounded360")
BLENDER_CAMERA_ANGLE_X = 0.6911112070083618  # the Blender lego scene's horizontal field of view


@dataclasses.dataclass(frozen=True)
class Scene:
    """A renderable scene: primitives, light, background and cameras (shared intrinsics)."""

    kind: str
    seed: int
    primitives: list
    light: np.ndarray  # [3] unit vector towards the light
    up: np.ndarray  # [3] world up, used for the sky gradient
    transparent: bool  # background: alpha 0 (True) or sky colour (False)
    paths: list  # [N] image paths relative to the scene folder
    splits: list  # [N] 'train', 'val' or 'test'
    camtoworlds: np.ndarray  # [N, 4, 4] OpenCV camera-to-world
    width: int
    height: int
    focal: float  # fx = fy, principal point at the image centre
    max_point_depth: float  # sparse points are sampled only closer than this

    @property
    def intrinsics(self):
        """[3, 3] pixel-from-camera matrix K (pixel centres at +0.5)."""
        return np.array([[self.focal, 0.0, self.width / 2], [0.0, self.focal, self.height / 2], [0.0, 0.0, 1.0]])


DEFAULTS = {  # scene -> (width, height, views)
    "object360": (100, 100, 40),
    "forward": (256, 192, 20),
    "unbounded360": (256, 192, 36),
}


def look_at(positions, target, up):
    """OpenCV camera-to-world of cameras at positions [N, 3] looking at target [3]: [N, 4, 4]."""
    forward = np.asarray(target, np.float64) - positions
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, np.asarray(up, np.float64))
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    camtoworlds = np.tile(np.eye(4), (len(positions), 1, 1))
    camtoworlds[:, :3, :4] = np.stack([right, down, forward, positions], axis=-1)
    return camtoworlds


def _colours(seed, count):
    """Seeded, saturated base colours of the primitives' textures, hues spread apart: [count] (r, g, b)."""
    rng = np.random.default_rng(seed)
    hues = (rng.uniform() + np.arange(count) * (math.sqrt(5) - 1) / 2) % 1.0
    return [colorsys.hsv_to_rgb(h, rng.uniform(0.5, 0.85), rng.uniform(0.8, 1.0)) for h in hues]


def _textured(seed, specs):
    """Primitives from (constructor, kwargs, finest, levels[, detail_radius]) specs."""
    colours = _colours(seed, len(specs))
    return [
        make(**kwargs, texture=Texture(i, colours[i], finest, levels, *rest))
        for i, (make, kwargs, finest, levels, *rest) in enumerate(specs)
    ]


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def hemisphere_positions(count, radius, phase, z_min=0.08, z_max=0.92):
    """Camera centres spread evenly on a spherical cap (golden-angle spiral): [count, 3]."""
    i = np.arange(count) + 0.5
    z = z_min + (z_max - z_min) * i / count  # uniform in z = uniform in area on the sphere
    azimuth = phase + i * math.pi * (3 - math.sqrt(5))
    ring = np.sqrt(1 - z**2)
    return radius * np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], -1)


def object360(seed, width, height, views):
    """A few primitives around the origin; cameras on the upper hemisphere (Blender layout)."""
    primitives = _textured(seed, [
        (Box, dict(center=(0.0, 0.0, -0.2), half=(0.55, 0.55, 0.35), rotation=rotation_z(0.3)), 0.08, 4),
        (Sphere, dict(center=(0.0, 0.0, 0.57), radius=0.42), 0.06, 4),
        (Sphere, dict(center=(0.78, -0.38, -0.25), radius=0.3), 0.05, 4),
        (Box, dict(center=(-0.62, 0.5, 0.0), half=(0.15, 0.15, 0.55), rotation=rotation_z(0.5) @ rotation_x(0.2)), 0.05, 4),
    ])  # fmt: skip
    held_out = max(1, views // 5)
    counts = {"train": views, "val": held_out, "test": held_out}
    radius, elevation = 4.0, math.radians(30)
    # Test views orbit at 30 degrees elevation, as the Blender test sets' circular path.
    azimuth = np.linspace(0, 2 * math.pi, held_out, endpoint=False)
    positions = {
        "train": hemisphere_positions(views, radius, phase=0.0),
        "val": hemisphere_positions(held_out, radius, phase=1.0),
        "test": radius * np.stack([
            math.cos(elevation) * np.cos(azimuth), math.cos(elevation) * np.sin(azimuth),
            np.full(held_out, math.sin(elevation)),
        ], -1),
    }  # fmt: skip
    paths = [f"{split}/r_{i}.png" for split in counts for i in range(counts[split])]
    splits = [split for split in counts for _ in range(counts[split])]
    camtoworlds = look_at(np.concatenate(list(positions.values())), (0, 0, 0), (0, 0, 1))
    focal = 0.5 * width / math.tan(0.5 * BLENDER_CAMERA_ANGLE_X)
    return Scene("object360", seed, primitives, _unit((0.4, -0.3, 0.85)), np.array([0.0, 0.0, 1.0]), True,
                 paths, splits, camtoworlds, width, height, focal, math.inf)  # fmt: skip


def forward(seed, width, height, views):
    """Cards, spheres and a box before a back wall over a floor; a forward-facing rig (LLFF layout)."""
    primitives = _textured(seed, [
        (Plane, dict(normal_vector=(0.0, 0.0, -1.0), offset=-8.0), 0.12, 5),  # back wall z = 8
        (Plane, dict(normal_vector=(0.0, -1.0, 0.0), offset=-1.2), 0.08, 5),  # floor y = 1.2
        (Box, dict(center=(-0.9, -0.2, 3.0), half=(0.6, 0.8, 0.02), rotation=rotation_z(0.15)), 0.04, 5),
        (Box, dict(center=(0.9, -0.4, 4.6), half=(0.9, 0.7, 0.02), rotation=rotation_z(-0.1)), 0.05, 5),
        (Sphere, dict(center=(0.25, 0.45, 2.2), radius=0.35), 0.03, 4),
        (Sphere, dict(center=(-0.4, 0.7, 5.5), radius=0.5), 0.05, 4),
        (Box, dict(center=(1.3, 0.8, 2.8), half=(0.3, 0.4, 0.3)), 0.04, 4),
    ])  # fmt: skip
    # Vogel spiral in an ellipse: any number of views, evenly spread on the rig plane z = 0.
    i = np.arange(views) + 0.5
    r = np.sqrt(i / views)
    angle = i * math.pi * (3 - math.sqrt(5))
    positions = np.stack([0.35 * r * np.cos(angle), 0.25 * r * np.sin(angle), np.zeros(views)], -1)
    camtoworlds = look_at(positions, (0.0, 0.0, 4.5), (0.0, -1.0, 0.0))
    paths = [f"images/IMG_{i:04d}.png" for i in range(views)]
    return Scene("forward", seed, primitives, _unit((-0.3, -0.8, -0.5)), np.array([0.0, -1.0, 0.0]), False,
                 paths, ["train"] * views, camtoworlds, width, height, 220.0 / 256 * width, math.inf)  # fmt: skip


def unbounded360(seed, width, height, views):
    """Objects on a ground plane to the horizon, pillars far out, sky; an orbit (mip-NeRF 360 layout)."""
    pillar_angles = np.radians(np.arange(8) * 45.0 + 20.0)
    pillars = [
        (Box, dict(center=(r * np.cos(a), r * np.sin(a), h), half=(0.5, 0.5, h), rotation=rotation_z(a)), 0.1, 5)
        for a, r, h in zip(pillar_angles, [9, 11, 10, 12, 9.5, 10.5, 11.5, 9], [1.5, 2.5, 2, 3, 1.8, 2.2, 2.8, 1.6])
    ]  # fmt: skip
    primitives = _textured(seed, [
        (Plane, dict(normal_vector=(0.0, 0.0, 1.0), offset=0.0), 0.1, 6, 4.0),  # ground z = 0
        (Sphere, dict(center=(0.0, 0.0, 0.6), radius=0.6), 0.04, 4),
        (Box, dict(center=(1.2, 0.6, 0.4), half=(0.4, 0.4, 0.4), rotation=rotation_z(0.4)), 0.04, 4),
        (Sphere, dict(center=(-1.0, 0.9, 0.35), radius=0.35), 0.03, 4),
        (Box, dict(center=(-0.5, -1.2, 0.5), half=(0.3, 0.6, 0.5), rotation=rotation_z(-0.3)), 0.04, 4),
        *pillars,
    ])  # fmt: skip
    # An ellipse, not a circle: equal x and y spread would give the camera centres' covariance a
    # repeated eigenvalue, whose eigenvectors np.linalg.eig (multinerf's pose PCA) need not make
    # orthogonal. Views keep even 10-degree azimuth steps; the height wobble has an even frequency,
    # so the orbit stays point-symmetric about the z axis and its principal axes are x, y and z.
    azimuth = np.linspace(0, 2 * math.pi, views, endpoint=False)
    semi_x, semi_y = 4.25, 3.75
    radius = semi_x * semi_y / np.hypot(semi_y * np.cos(azimuth), semi_x * np.sin(azimuth))
    height_above_ground = 2.0 + 0.25 * np.sin(2 * azimuth)
    positions = np.stack([radius * np.cos(azimuth), radius * np.sin(azimuth), height_above_ground], -1)
    camtoworlds = look_at(positions, (0.0, 0.0, 0.9), (0.0, 0.0, 1.0))
    paths = [f"images/IMG_{i:04d}.png" for i in range(views)]
    return Scene("unbounded360", seed, primitives, _unit((0.4, 0.3, 0.85)), np.array([0.0, 0.0, 1.0]), False,
                 paths, ["train"] * views, camtoworlds, width, height, 220.0 / 256 * width, 30.0)  # fmt: skip


def build_scene(kind, seed=0, width=None, height=None, views=None):
    """The preset `kind` with the given seed; size and view count default to DEFAULTS[kind]."""
    if kind not in SCENES:
        raise ValueError(f"unknown scene {kind!r}; choose one of {', '.join(SCENES)}")
    default_width, default_height, default_views = DEFAULTS[kind]
    width, height = width or default_width, height or default_height
    views = views or default_views
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in 0 .. 2^32 - 1 (it keys 32-bit texture hashes), got {seed}")
    if width < 1 or height < 1 or views < 1:
        raise ValueError(f"need a positive size and view count, got {width}x{height} and {views} views")
    return {"object360": object360, "forward": forward, "unbounded360": unbounded360}[kind](
        seed, width, height, views
    )
