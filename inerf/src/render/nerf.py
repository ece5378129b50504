# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF's volume renderer: stratified coarse samples, importance + depth-guided fine samples."""

import torch


class DotMap(dict):
    """A dict with attribute access (the subset of the `dotmap` package the release uses)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e

    def __setattr__(self, name, value):
        self[name] = value

    def toDict(self):
        """Plain nested dicts."""
        return {k: v.toDict() if isinstance(v, DotMap) else v for k, v in self.items()}


def as_dotmap(d):
    """Nested dicts -> nested DotMaps."""
    return DotMap({k: as_dotmap(v) if isinstance(v, dict) else v for k, v in d.items()})


class _RenderWrapper(torch.nn.Module):
    """Renders rays (SB, B, 8) with a fixed net: (rgb, depth) of the finest pass, or the output dict."""

    def __init__(self, net, renderer, simple_output):
        super().__init__()
        self.net = net
        self.renderer = renderer
        self.simple_output = simple_output

    def forward(self, rays, want_weights=False):
        """rays (SB, B, 8) -> (rgb (SB, B, 3), depth (SB, B)) or {coarse: {...}, fine: {...}}."""
        if rays.shape[0] == 0:
            return torch.zeros(0, 3, device=rays.device), torch.zeros(0, device=rays.device)
        outputs = self.renderer(self.net, rays, want_weights=want_weights and not self.simple_output)
        if self.simple_output:
            level = outputs.fine if self.renderer.using_fine else outputs.coarse
            return level.rgb, level.depth
        return outputs.toDict()


class NeRFRenderer(torch.nn.Module):
    """NeRF renderer with pixelNeRF's sampling (n_coarse, n_fine, n_fine_depth samples per ray).

    sched: optional [iterations, n_coarse values, n_fine values] sample-count schedule.
    det: deterministic samples (bin centres, the CDF at evenly spaced levels, the depth itself)
      instead of the release's always-random ones (default False, as released); for comparing
      runs exactly (micro-batching, CPU vs GPU).
    """

    def __init__(self, n_coarse=128, n_fine=0, n_fine_depth=0, noise_std=0.0, depth_std=0.01,
                 eval_batch_size=100000, white_bkgd=False, lindisp=False, sched=None, det=False):
        super().__init__()
        self.n_coarse = n_coarse
        self.n_fine = n_fine
        self.n_fine_depth = n_fine_depth
        self.noise_std = noise_std
        self.depth_std = depth_std
        self.eval_batch_size = eval_batch_size
        self.white_bkgd = white_bkgd
        self.lindisp = lindisp
        if lindisp:
            print("Using linear displacement rays")
        self.using_fine = n_fine > 0
        self.sched = sched
        self.det = det
        if sched is not None and len(sched) == 0:
            self.sched = None
        self.register_buffer("iter_idx", torch.tensor(0, dtype=torch.long), persistent=True)
        self.register_buffer("last_sched", torch.tensor(0, dtype=torch.long), persistent=True)

    def _depths(self, rays, z_steps):
        """z_steps (B, K) in [0, 1] -> depths (B, K) between near and far (or linear in disparity)."""
        near, far = rays[:, -2:-1], rays[:, -1:]
        if not self.lindisp:
            return near * (1 - z_steps) + far * z_steps
        return 1 / (1 / near * (1 - z_steps) + 1 / far * z_steps)

    def sample_coarse(self, rays):
        """rays (B, 8) -> (B, Kc) depths, one uniform draw in each of Kc equal bins (always jittered)."""
        step = 1.0 / self.n_coarse
        B = rays.shape[0]
        z_steps = torch.linspace(0, 1 - step, self.n_coarse, device=rays.device).unsqueeze(0).repeat(B, 1)
        jitter = torch.full_like(z_steps, 0.5) if self.det else torch.rand_like(z_steps)
        z_steps = z_steps + jitter * step
        return self._depths(rays, z_steps)

    def sample_fine(self, rays, weights):
        """rays (B, 8), coarse weights (B, Kc) -> (B, Kf - Kfd) depths by inverse CDF over the bins."""
        B = rays.shape[0]
        weights = weights.detach() + 1e-5  # keeps the pdf finite for all-zero weights
        pdf = weights / torch.sum(weights, -1, keepdim=True)
        cdf = torch.cumsum(pdf, -1)
        cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1)  # (B, Kc+1)
        n = self.n_fine - self.n_fine_depth
        if self.det:
            u = torch.linspace(0.5 / n, 1 - 0.5 / n, n, device=rays.device).expand(B, n).contiguous()
        else:
            u = torch.rand(B, n, dtype=torch.float32, device=rays.device)
        inds = torch.searchsorted(cdf, u, right=True).float() - 1.0
        inds = torch.clamp_min(inds, 0.0)
        jitter = torch.full_like(inds, 0.5) if self.det else torch.rand_like(inds)
        z_steps = (inds + jitter) / self.n_coarse
        return self._depths(rays, z_steps)

    def sample_fine_depth(self, rays, depth):
        """rays (B, 8), depth (B) -> (B, Kfd) normal samples around depth, clamped to [near, far]."""
        z_samp = depth.unsqueeze(1).repeat((1, self.n_fine_depth))
        if not self.det:
            z_samp = z_samp + torch.randn_like(z_samp) * self.depth_std
        return torch.max(torch.min(z_samp, rays[:, -1:]), rays[:, -2:-1])

    def composite(self, model, rays, z_samp, coarse=True, sb=0):
        """Alpha-composites model outputs at z_samp (B, K) along rays (B, 8) -> weights (B, K), rgb (B, 3), depth (B).

        The last interval ends at the ray's far bound (not at infinity). sb > 0: rays are sb
        objects' batches in a row and the model is called with (sb, chunk, 3) points.
        """
        B, K = z_samp.shape
        deltas = torch.cat([z_samp[:, 1:] - z_samp[:, :-1], rays[:, -1:] - z_samp[:, -1:]], -1)  # (B, K)
        points = rays[:, None, :3] + z_samp.unsqueeze(2) * rays[:, None, 3:6]  # (B, K, 3)
        use_viewdirs = getattr(model, "use_viewdirs", False)

        if sb > 0:
            points = points.reshape(sb, -1, 3)  # (SB, B'*K, 3)
            eval_batch_size = (self.eval_batch_size - 1) // sb + 1
            eval_batch_dim = 1
        else:
            points = points.reshape(-1, 3)  # (B*K, 3)
            eval_batch_size = self.eval_batch_size
            eval_batch_dim = 0
        split_points = torch.split(points, eval_batch_size, dim=eval_batch_dim)
        if use_viewdirs:
            viewdirs = rays[:, None, 3:6].expand(-1, K, -1)
            viewdirs = viewdirs.reshape(sb, -1, 3) if sb > 0 else viewdirs.reshape(-1, 3)
            split_viewdirs = torch.split(viewdirs, eval_batch_size, dim=eval_batch_dim)
            val_all = [model(p, coarse=coarse, viewdirs=d) for p, d in zip(split_points, split_viewdirs)]
        else:
            val_all = [model(p, coarse=coarse) for p in split_points]
        out = torch.cat(val_all, dim=eval_batch_dim).reshape(B, K, -1)

        rgbs = out[..., :3]
        sigmas = out[..., 3]
        if self.training and self.noise_std > 0.0:
            sigmas = sigmas + torch.randn_like(sigmas) * self.noise_std
        alphas = 1 - torch.exp(-deltas * torch.relu(sigmas))
        # 1e-10 keeps the transmittance product from collapsing to exactly 0
        alphas_shifted = torch.cat([torch.ones_like(alphas[:, :1]), 1 - alphas + 1e-10], -1)
        T = torch.cumprod(alphas_shifted, -1)
        weights = alphas * T[:, :-1]
        rgb_final = torch.sum(weights.unsqueeze(-1) * rgbs, -2)
        depth_final = torch.sum(weights * z_samp, -1)
        if self.white_bkgd:
            rgb_final = rgb_final + 1 - weights.sum(dim=1).unsqueeze(-1)
        return weights, rgb_final, depth_final

    def forward(self, model, rays, want_weights=False):
        """rays (SB, B, 8) -> DotMap coarse/fine of rgb (SB, B, 3), depth (SB, B) [, weights (SB, B, K)]."""
        if self.sched is not None and self.last_sched.item() > 0:
            self.n_coarse = self.sched[1][self.last_sched.item() - 1]
            self.n_fine = self.sched[2][self.last_sched.item() - 1]
        assert len(rays.shape) == 3
        superbatch_size = rays.shape[0]
        rays = rays.reshape(-1, 8)

        z_coarse = self.sample_coarse(rays)
        coarse_composite = self.composite(model, rays, z_coarse, coarse=True, sb=superbatch_size)
        outputs = DotMap(coarse=self._format_outputs(coarse_composite, superbatch_size, want_weights))
        if self.using_fine:
            all_samps = [z_coarse]
            if self.n_fine - self.n_fine_depth > 0:
                all_samps.append(self.sample_fine(rays, coarse_composite[0].detach()))
            if self.n_fine_depth > 0:
                all_samps.append(self.sample_fine_depth(rays, coarse_composite[2]))
            z_combine_sorted, _ = torch.sort(torch.cat(all_samps, dim=-1), dim=-1)
            fine_composite = self.composite(model, rays, z_combine_sorted, coarse=False, sb=superbatch_size)
            outputs.fine = self._format_outputs(fine_composite, superbatch_size, want_weights)
        return outputs

    def _format_outputs(self, rendered_outputs, superbatch_size, want_weights=False):
        """(weights, rgb, depth) -> DotMap with the super-batch dimension restored."""
        weights, rgb, depth = rendered_outputs
        if superbatch_size > 0:
            rgb = rgb.reshape(superbatch_size, -1, 3)
            depth = depth.reshape(superbatch_size, -1)
            weights = weights.reshape(superbatch_size, -1, weights.shape[-1])
        ret_dict = DotMap(rgb=rgb, depth=depth)
        if want_weights:
            ret_dict.weights = weights
        return ret_dict

    def sched_step(self, steps=1):
        """Advances the iteration counter and applies due sample-count schedule entries."""
        if self.sched is None:
            return
        self.iter_idx += steps
        while (self.last_sched.item() < len(self.sched[0])
               and self.iter_idx.item() >= self.sched[0][self.last_sched.item()]):
            self.n_coarse = self.sched[1][self.last_sched.item()]
            self.n_fine = self.sched[2][self.last_sched.item()]
            print("INFO: NeRF sampling resolution changed on schedule ==> c", self.n_coarse, "f", self.n_fine)
            self.last_sched += 1

    @classmethod
    def from_conf(cls, conf, white_bkgd=False, lindisp=False, eval_batch_size=100000):
        """From a HOCON `renderer` block (white_bkgd read as a float, as released)."""
        return cls(
            conf.get_int("n_coarse", 128),
            conf.get_int("n_fine", 0),
            n_fine_depth=conf.get_int("n_fine_depth", 0),
            noise_std=conf.get_float("noise_std", 0.0),
            depth_std=conf.get_float("depth_std", 0.01),
            white_bkgd=conf.get_float("white_bkgd", white_bkgd),
            lindisp=lindisp,
            eval_batch_size=conf.get_int("eval_batch_size", eval_batch_size),
            sched=conf.get_list("sched", None),
            det=conf.get_bool("det", False),
        )

    def bind_parallel(self, net, gpus=None, simple_output=False):
        """Module rendering rays with this renderer and net; DataParallel over gpus if several."""
        wrapped = _RenderWrapper(net, self, simple_output=simple_output)
        if gpus is not None and len(gpus) > 1 and torch.cuda.device_count() > 1:
            print("Using multi-GPU", gpus)
            wrapped = torch.nn.DataParallel(wrapped, gpus, dim=1)
        return wrapped
