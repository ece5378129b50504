# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF utilities (`from inerf.src import util`; util.gen_rays, util.args.parse_args, ...)."""

from . import args  # noqa: F401
from .util import *  # noqa: F401,F403
