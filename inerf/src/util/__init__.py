"""pixelNeRF utilities (`from inerf.src import util`; util.gen_rays, util.args.parse_args, ...)."""

from . import args  # noqa: F401
from .util import *  # noqa: F401,F403
