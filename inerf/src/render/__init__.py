"""pixelNeRF's volume renderer."""

from .nerf import NeRFRenderer  # noqa: F401
