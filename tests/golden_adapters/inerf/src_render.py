"""Adapters for inerf.src.render.nerf cases: NeRFRenderer methods with a stub model or a seed."""

import torch

from inerf.src.render.nerf import NeRFRenderer


class _StubModel(torch.nn.Module):
    """Returns the stored raw outputs in query order, ignoring the points; records the points.

    Points come as (chunk, 3), or (sb, chunk, 3) with the raw outputs read as (sb, -1, 4).
    """

    def __init__(self, raw, use_viewdirs, sb):
        super().__init__()
        self.raw = raw.reshape(sb, -1, 4) if sb > 0 else raw.reshape(-1, 4)
        self.use_viewdirs = use_viewdirs
        self.offset = 0
        self.points = []

    def forward(self, points, coarse=True, viewdirs=None):
        self.points.append(points)
        n = points.shape[-2]
        out = self.raw[..., self.offset:self.offset + n, :]
        self.offset += n
        return out


def _composite(case, inputs, function):
    """NeRFRenderer(n_coarse=K, white_bkgd, eval_batch_size).composite(stub, rays, z_samp, coarse, sb).

    Static values the case leaves out take the release's defaults (black, 100000, coarse, sb 0, and a
    model without use_viewdirs)."""
    s = case["static"]
    raw = inputs["raw"]
    B, K = inputs["z_samp"].shape
    sb = s.get("sb", 0)
    renderer = NeRFRenderer(n_coarse=K, white_bkgd=s.get("white_bkgd", False),
                            eval_batch_size=s.get("eval_batch_size", 100000)).eval()
    model = _StubModel(raw, s.get("model_use_viewdirs", False), sb)
    weights, rgb, depth = function(renderer, model, inputs["rays"], inputs["z_samp"], s.get("coarse", True), sb)
    points = torch.cat(model.points, dim=-2).reshape(B, K, 3)
    return weights, rgb, depth, points


def _sample_coarse(case, inputs, function):
    """Seeded NeRFRenderer(n_coarse, lindisp).sample_coarse(rays)."""
    s = case["static"]
    renderer = NeRFRenderer(n_coarse=s["n_coarse"], lindisp=s["lindisp"])
    torch.manual_seed(s["torch_seed"])
    return function(renderer, inputs["rays"])


def _sample_fine(case, inputs, function):
    """Seeded NeRFRenderer(n_coarse, n_fine, n_fine_depth, lindisp).sample_fine(rays, weights)."""
    s = case["static"]
    renderer = NeRFRenderer(n_coarse=s["n_coarse"], n_fine=s["n_fine"], n_fine_depth=s["n_fine_depth"],
                            lindisp=s["lindisp"])
    torch.manual_seed(s["torch_seed"])
    return function(renderer, inputs["rays"], inputs["weights"])


ADAPTERS = {
    "inerf.src.render.nerf:NeRFRenderer.composite": _composite,
    "inerf.src.render.nerf:NeRFRenderer.sample_coarse": _sample_coarse,
    "inerf.src.render.nerf:NeRFRenderer.sample_fine": _sample_fine,
}
