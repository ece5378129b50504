# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""The depth-supervised Mip-NeRF: a proposal MLP (density only) for all but the last level, the
shared NeRF MLP with optional per-camera GLO embeddings for the last, and the fork's ray-weight
losses (bounded CDF, URF-style, DS-NeRF's KL as our re-implementation, distortion, proposal)."""

import contextlib
import math

import torch
from torch import nn

from common import device as device_utils
from depth_mipnerf.models import mip

_EPS16 = torch.finfo(torch.float16).eps
# The fork's depth-loss functions, selected by loss.depth_loss ('none' skips them).
DEPTH_LOSSES = ('cdf', 'urf', 'cdf_test', 'ds_nerf', 'none')


def _xavier_linear(dim_in, dim_out):
    """nn.Linear with Glorot-uniform weights (torch's default bias), as the fork's _xavier_init."""
    linear = nn.Linear(dim_in, dim_out)
    nn.init.xavier_uniform_(linear.weight)
    return linear


class MLP(nn.Module):
    """Trunk of net_depth ReLU layers (input re-fed after every skip_index-th), a density head and,
    unless prop_mlp, a bottleneck + [view encoding, GLO] branch to the RGB head."""

    def __init__(self, net_depth, net_width, net_depth_condition, net_width_condition, skip_index,
                 num_rgb_channels, num_density_channels, activation, xyz_dim, view_dim,
                 prop_mlp=False, mlp_normals=False):
        super().__init__()
        if activation != 'relu':
            raise ValueError(f"net_activation must be 'relu' (the fork's only one), got {activation!r}")
        self.prop_mlp = prop_mlp
        self.skip_index = skip_index
        self.mlp_normals = mlp_normals and not prop_mlp
        # Sequential(Linear, ReLU) as the fork: its state-dict names (layers.<i>.0.weight) are ours.
        self.layers = nn.ModuleList(
            nn.Sequential(_xavier_linear(net_width + xyz_dim if (i - 1) % skip_index == 0 and i > 1 else
                                         (xyz_dim if i == 0 else net_width), net_width), nn.ReLU())
            for i in range(net_depth))
        self.density_layer = _xavier_linear(net_width, num_density_channels)
        if prop_mlp:
            return
        if self.mlp_normals:
            self.normals_layer = nn.Linear(net_width, 3)
        # No view input (use_viewdirs False, no GLO): the RGB head reads the trunk (the fork crashes).
        self.conditioned = view_dim > 0
        if self.conditioned:
            self.extra_layer = _xavier_linear(net_width, net_width)
            self.view_layers = nn.Sequential(*[
                nn.Sequential(_xavier_linear(net_width + view_dim if i == 0 else net_width_condition,
                                             net_width_condition), nn.ReLU())
                for i in range(net_depth_condition)])
        self.color_layer = nn.Linear(net_width_condition if self.conditioned else net_width,
                                     num_rgb_channels)

    def forward(self, x, view_direction=None, glo_vec=None):
        """x [B, N, F], view_direction [B, V] or None, glo_vec [B, G] or None ->
        raw_density [B, N, 1] (prop_mlp) or (raw_rgb [B, N, 3], raw_density[, normals [B, N, 3]])."""
        inputs = x
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i % self.skip_index == 0 and i > 0:
                x = torch.cat([x, inputs], dim=-1)
        raw_density = self.density_layer(x)
        if self.prop_mlp:
            return raw_density
        normals = -l2_normalize(self.normals_layer(x)) if self.mlp_normals else None
        if self.conditioned:
            x = self.extra_layer(x)
            conditions = [c for c in (view_direction, glo_vec) if c is not None]
            x = torch.cat([x] + [c[..., None, :].expand(x.shape[:-1] + c.shape[-1:]) for c in conditions], -1)
            x = self.view_layers(x)
        raw_rgb = self.color_layer(x)
        if self.mlp_normals:
            return raw_rgb, raw_density, normals
        return raw_rgb, raw_density


def l2_normalize(x, eps=1e-6):
    """x / |x| along the last axis, |x|^2 clamped at eps (a zero vector stays zero): [..., 3]."""
    return x / torch.sqrt(torch.clamp_min(torch.sum(x**2, dim=-1, keepdim=True), eps))


class DepthVarianceNetwork(nn.Module):
    """A learned scalar s = exp(-variance) (init 3.0), the std of depth-guided samples."""

    def __init__(self, init_val):
        super().__init__()
        self.variance = nn.Parameter(torch.tensor(float(init_val)))

    def forward(self, x):
        """x [B, ...] -> s [B, 1]."""
        return torch.ones(len(x), 1, device=x.device) * torch.exp(-self.variance)


class MipNerf(nn.Module):
    """Mip-NeRF with a proposal MLP, GLO embeddings and depth losses; see depth_mipnerf/README.md.

    Arguments as the fork's MipNerf (the yaml's nerf.* and nerf.mlp.* keys), plus this port's:
      num_fine_samples: samples of the last level (hard-coded 32 in the fork).
      prop_net_depth, prop_net_width: the proposal MLP (hard-coded 4 x 256 in the fork).
      encode_glo: NeRF-encode the GLO vector (the fork reads this attribute but never sets it).
      depth_loss: which ray-weight depth loss forward() returns as (empty_loss, near_loss).
      cdf_beta: the bounded-CDF loss' offset of the two CDFs (the write-up's beta * eps).
      cdf_sigma_from_eps: the CDF's std is forward's `eps` (the write-up) instead of 0.03 (the code).
      urf_fix_sigma: the URF target's std is eps / 3 instead of (eps / 3)^2.
      fix_ray_shape: cast cylinders for ray_shape 'cylinder' (the fork casts cones whatever
        ray_shape says: its cylinder branch is commented out).
      fix_resample_count: without stop_resample_grad, still draw num_samples / num_fine_samples
        (the fork draws as many as the level before, so its last level keeps num_samples).
      ds_nerf_sigma: the std of DS-NeRF's Gaussian around the depth.
    """

    def __init__(self, num_samples=128, num_levels=2, resample_padding=0.01, stop_resample_grad=True,
                 use_viewdirs=True, disparity=False, depth_sampling=False, ray_shape='cone',
                 min_deg_point=0, max_deg_point=16, deg_view=4, density_activation='softplus',
                 density_noise=0., density_bias=-1., rgb_activation='sigmoid', rgb_padding=0.001,
                 disable_integration=False, append_identity=True, mlp_net_depth=8, mlp_net_width=256,
                 mlp_net_depth_condition=1, mlp_net_width_condition=128, mlp_skip_index=4,
                 mlp_num_rgb_channels=3, mlp_num_density_channels=1, mlp_net_activation='relu',
                 prop_mlp=False, num_glo_embeddings=18, num_glo_features=4, mlp_normals=True,
                 num_fine_samples=32, prop_net_depth=4, prop_net_width=256, encode_glo=False,
                 depth_loss='cdf', cdf_beta=0., cdf_sigma_from_eps=False, urf_fix_sigma=False,
                 ds_nerf_sigma=0.03, fix_resample_count=False, fix_ray_shape=False):
        super().__init__()
        if density_activation != 'softplus' or rgb_activation != 'sigmoid':
            raise ValueError('the fork supports density_activation softplus and rgb_activation sigmoid only')
        if depth_loss not in DEPTH_LOSSES:
            raise ValueError(f'depth_loss must be one of {DEPTH_LOSSES}, got {depth_loss!r}')
        self.num_levels, self.num_samples, self.num_fine_samples = num_levels, num_samples, num_fine_samples
        if ray_shape not in ('cone', 'cylinder'):
            raise ValueError(f"ray_shape must be 'cone' or 'cylinder', got {ray_shape!r}")
        self.disparity, self.depth_sampling = disparity, depth_sampling
        self.ray_shape = ray_shape if fix_ray_shape else 'cone'
        self.disable_integration = disable_integration
        self.min_deg_point, self.max_deg_point = min_deg_point, max_deg_point
        self.use_viewdirs, self.deg_view, self.append_identity = use_viewdirs, deg_view, append_identity
        self.density_noise, self.density_bias, self.rgb_padding = density_noise, density_bias, rgb_padding
        self.resample_padding, self.stop_resample_grad = resample_padding, stop_resample_grad
        self.num_glo_embeddings, self.num_glo_features, self.encode_glo = num_glo_embeddings, num_glo_features, encode_glo
        self.depth_loss, self.cdf_beta = depth_loss, cdf_beta
        self.cdf_sigma_from_eps, self.ds_nerf_sigma = cdf_sigma_from_eps, ds_nerf_sigma
        self.urf_fix_sigma, self.fix_resample_count = urf_fix_sigma, fix_resample_count
        self.mlp_normals = mlp_normals
        xyz_dim = (max_deg_point - min_deg_point) * 3 * 2
        view_dim = (deg_view * 3 * 2 + (3 if append_identity else 0)) if use_viewdirs else 0
        glo_dim = num_glo_features * (9 if encode_glo else 1)
        self.mlp = MLP(mlp_net_depth, mlp_net_width, mlp_net_depth_condition, mlp_net_width_condition,
                       mlp_skip_index, mlp_num_rgb_channels, mlp_num_density_channels, mlp_net_activation,
                       xyz_dim, view_dim + glo_dim, prop_mlp=False, mlp_normals=mlp_normals)
        self.use_prop_mlp = prop_mlp
        if prop_mlp:
            # skip_index 8 > depth: the proposal MLP has no skip connection, as the fork's.
            self.prop_mlp = MLP(prop_net_depth, prop_net_width, mlp_net_depth_condition,
                                mlp_net_width_condition, 8, mlp_num_rgb_channels,
                                mlp_num_density_channels, mlp_net_activation, xyz_dim, 0, prop_mlp=True)
        self.depth_network = DepthVarianceNetwork(init_val=3.0)
        if num_glo_features > 0:
            self.glo_vecs = nn.Embedding(num_glo_embeddings, num_glo_features)
        # Set by nerf_system.use_mlp_autocast (Config.precision 16 on a GPU): bf16 MLPs, fp32 rendering.
        self.mlp_autocast = False

    def glo_vector(self, rays, zero_glo):
        """[B, G] GLO code of each ray's camera (rays.cam_idx), zeros when zero_glo (eval); None if off."""
        if self.num_glo_features == 0:
            return None
        if zero_glo:
            glo_vec = torch.zeros(rays.origins.shape[:-1] + (self.num_glo_features,), device=rays.origins.device)
        else:
            # No range check here (it would wait for the device every step): train.check_glo_table
            # compares the dataset's camera indices with the table once, at start-up.
            glo_vec = self.glo_vecs(rays.cam_idx[..., 0].long())
        if self.encode_glo:
            glo_vec = mip.pos_enc(glo_vec, 0, 4, append_identity=True)
        return glo_vec

    def _field(self, means_covs, rays, glo_vec, last, compute_normals):
        """(raw_rgb or None, raw_density [B, N, 1], mlp_normals or None, density_normals or None) of one level."""
        device = means_covs[0].device
        with device_utils.autocast(device, enabled=self.mlp_autocast):
            out = self._field_raw(means_covs, rays, glo_vec, last, compute_normals)
        return tuple(None if x is None else x.float() for x in out)

    def _field_raw(self, means_covs, rays, glo_vec, last, compute_normals):
        """_field without the autocast and the cast back to float32."""
        if not last and self.use_prop_mlp:
            return None, self.prop_mlp(mip.integrated_pos_enc(means_covs, self.min_deg_point, self.max_deg_point)), None, None
        viewdirs_enc = mip.pos_enc(rays.viewdirs, 0, self.deg_view, self.append_identity) if self.use_viewdirs else None
        means = means_covs[0]
        # Grad on only for the normals: under no_grad (rendering) the MLP builds no graph otherwise.
        with torch.enable_grad() if compute_normals else contextlib.nullcontext():
            if compute_normals and not means.requires_grad:
                # Means already in the graph (stop_resample_grad False) stay there, as the fork's:
                # the rendering's gradient reaches the proposal weights through them.
                means = means.detach().requires_grad_()
            samples_enc = mip.integrated_pos_enc((means, means_covs[1]), self.min_deg_point, self.max_deg_point)
            out = self.mlp(samples_enc, viewdirs_enc, glo_vec)
            density_normals = None
            if compute_normals:
                # The negated, normalised gradient of the density w.r.t. the Gaussians' means.
                grad = torch.autograd.grad(out[1].sum(), means, create_graph=self.training)[0]
                density_normals = -l2_normalize(torch.nan_to_num(grad))
        return out[0], out[1], out[2] if self.mlp_normals else None, density_normals

    def forward(self, rays, randomized, white_bkgd, compute_normals=False, eps=1.0, zero_glo=True):
        """Renders rays (datasets.Rays of [B, ...]) through all levels.

        Returns:
          dict: rgb_coarse, rgb_fine [B, 3]; depth, acc [B]; weights [B, n]; t_samples [B, n+1]
          (the last level's); density_normals, mlp_normals [B, n, 3]; s; distortion [B];
          empty_loss, near_loss [1] (loss.depth_loss); envelope_loss [B, n] (prop_mlp).
        """
        glo_vec = self.glo_vector(rays, zero_glo)
        rgbs, envelopes = [], []
        s = weights = None
        for i_level in range(self.num_levels):
            last = i_level == self.num_levels - 1
            if i_level == 0:
                if self.depth_sampling:
                    s = self.depth_network(rays.origins[:1])[:, :1].clip(1e-6, 1e6)
                t_samples, means_covs = mip.sample_along_rays(
                    rays.origins, rays.directions, rays.radii, self.num_samples, rays.near, rays.far,
                    randomized, self.disparity, self.ray_shape, rays, s)
            else:
                t_samples, means_covs = mip.resample_along_rays(
                    rays.origins, rays.directions, rays.radii, t_samples, weights, randomized,
                    self.ray_shape, self.stop_resample_grad, self.resample_padding,
                    self.num_fine_samples if last else self.num_samples, self.fix_resample_count)
            if self.disable_integration:
                means_covs = (means_covs[0], torch.zeros_like(means_covs[1]))
            raw_rgb, raw_density, mlp_normals, density_normals = self._field(
                means_covs, rays, glo_vec, last, compute_normals and last)
            if randomized and self.density_noise > 0:
                raw_density = raw_density + self.density_noise * torch.randn_like(raw_density)
            if raw_rgb is None:
                rgb = torch.zeros(raw_density.shape[:-1] + (3,), device=raw_density.device)
            else:
                rgb = torch.sigmoid(raw_rgb) * (1 + 2 * self.rgb_padding) - self.rgb_padding
            density = nn.functional.softplus(raw_density + self.density_bias)
            comp_rgb, depth, acc, weights = mip.volumetric_rendering(
                rgb, density, t_samples, rays.directions, white_bkgd, rays.depth)
            rgbs.append(comp_rgb)
            if not last and self.use_prop_mlp:
                envelopes.append((t_samples, weights))

        zeros_n3 = torch.zeros(weights.shape + (3,), device=weights.device)
        out = {
            'rgb_coarse': rgbs[-2] if len(rgbs) > 1 else rgbs[-1], 'rgb_fine': rgbs[-1],
            'depth': depth, 'acc': acc, 'weights': weights, 't_samples': t_samples,
            'density_normals': density_normals if density_normals is not None else zeros_n3,
            'mlp_normals': mlp_normals if mlp_normals is not None else zeros_n3,
            's': s if s is not None else torch.full((1,), eps, device=weights.device),
            'distortion': lossfun_distortion(t_samples, weights),
        }
        out['depth_terms'] = self.depth_terms(rays, t_samples, weights, eps)
        out['empty_loss'], out['near_loss'] = _combine(out['depth_terms'], weights)
        if self.use_prop_mlp:
            # The proposal levels bound the final weights from above; averaged over the levels.
            out['envelope_loss'] = sum(lossfun_outer(t_samples.detach(), weights.detach(), t_env, w_env)
                                       for t_env, w_env in envelopes) / len(envelopes)
        return out

    def depth_terms(self, rays, t_samples, weights, eps):
        """loss.depth_loss's terms on the last level's weights: {'empty': [(sum, count)], 'near': [...]}."""
        if self.depth_loss == 'cdf':
            return depth_weight_CDF_terms(rays, t_samples, weights, eps, self.cdf_beta,
                                          sigma_from_eps=self.cdf_sigma_from_eps)
        if self.depth_loss == 'urf':
            return depth_weight_terms(rays, t_samples, weights, eps, fix_sigma=self.urf_fix_sigma)
        if self.depth_loss == 'cdf_test':
            return depth_weight_CDF_test_terms(rays, t_samples, weights, eps)
        if self.depth_loss == 'ds_nerf':
            return ds_nerf_terms(rays, t_samples, weights, self.ds_nerf_sigma)
        return {'empty': [], 'near': []}

    def depth_losses(self, rays, t_samples, weights, eps):
        """(empty_loss, near_loss) [1] of loss.depth_loss on the last level's weights."""
        return _combine(self.depth_terms(rays, t_samples, weights, eps), weights)


def _ratio(total, count):
    """total / max(count, 1) as a [1] tensor: the fork's normaliser of a masked sum."""
    return total.reshape(1) / torch.clamp_min(count.reshape(1), 1.)


def _combine(terms, w):
    """(empty, near) [1] of depth-loss terms {'empty': [(sum, count), ...], 'near': [...]} on weights w."""
    zero = torch.zeros(1, dtype=w.dtype, device=w.device)
    return tuple(sum((_ratio(*pair) for pair in terms[name]), zero) for name in ('empty', 'near'))


def lossfun_distortion(t, w):
    """Mip-NeRF 360 distortion loss per ray: t [B, N+1], w [B, N] -> [B]."""
    ut = (t[..., 1:] + t[..., :-1]) / 2
    dut = torch.abs(ut[..., :, None] - ut[..., None, :])
    loss_inter = torch.sum(w * torch.sum(w[..., None, :] * dut, dim=-1), dim=-1)
    loss_intra = torch.sum(w**2 * (t[..., 1:] - t[..., :-1]), dim=-1) / 3
    return loss_inter + loss_intra


def depth_weight_terms(rays, tvals_, w, eps, *, fix_sigma=False):
    """lossfun_depth_weight as {'empty': [(sum [], count [])], 'near': [(sum, count)]}."""
    depth = rays.depth
    tvals = 0.5 * (tvals_[..., :-1] + tvals_[..., 1:])
    sigma = eps / 3. if fix_sigma else (eps / 3.) ** 2
    mask_near = ((tvals > depth - eps) & (tvals < depth + eps)).to(w.dtype)
    mask_empty = (tvals < depth - eps).to(w.dtype)
    dist = mask_near * (tvals - depth)
    target = torch.nan_to_num(1. / (sigma * math.sqrt(2 * math.pi)) * torch.exp(-(dist**2 / (2 * sigma**2 + 1e-6))))
    # The max is the Gaussian's peak (reached wherever dist = 0, also outside the window), so it is
    # the same over a micro-batch as over its batch.
    target = target / target.max() * mask_near
    return {'empty': [(((mask_empty * w) ** 2).sum(), mask_empty.sum())],
            'near': [(((mask_near * w - target) ** 2).sum(), mask_near.sum())]}


def lossfun_depth_weight(rays, tvals_, w, eps, *, fix_sigma=False):
    """URF-style line-of-sight loss: (empty, near) [1] for depth [B, 1], t [B, N+1], w [B, N].

    Near window |t - D| < eps: w pulled to a Gaussian of "std" (eps / 3)^2 (sic) normalised by its
    maximum over the batch; empty (t < D - eps): sum w^2. Each is a mean over its window's samples.
    The squared std is far narrower than a sample interval, so the target is ~0 and the loss mostly
    pushes the weights out of the window; fix_sigma uses the std eps / 3 (URF's window).
    """
    return _combine(depth_weight_terms(rays, tvals_, w, eps, fix_sigma=fix_sigma), w)


def normal_cdf(x, loc, scale):
    """The CDF of Normal(loc, scale) at x, as torch.distributions.Normal.cdf computes it: [...].

    Written out so that neither argument checks (a host sync) nor the float scale (copied to the
    device as a tensor every call) cost the training step anything.
    """
    return 0.5 * (1 + torch.erf((x - loc) * (1.0 / scale) / math.sqrt(2)))


def depth_weight_CDF_terms(rays, tvals_, w, eps, beta=0., *, sigma_from_eps=False):
    """lossfun_depth_weight_CDF as {'empty': [(sum [], count [])], 'near': [close, far]}."""
    depth = rays.depth
    tvals = 0.5 * (tvals_[..., :-1] + tvals_[..., 1:])
    sigma = eps if sigma_from_eps else 0.03
    valid = depth > 0
    mask_near_close = ((tvals > depth - 3 * sigma) & (tvals < depth) & valid).to(w.dtype)
    mask_near_far = ((tvals > depth) & (tvals < depth + 3 * sigma) & valid).to(w.dtype)
    mask_empty = ((tvals < depth - 3 * sigma) & valid).to(w.dtype)
    w_cumsum = torch.cumsum(w, dim=-1)
    cdf_upper = normal_cdf(tvals, depth - beta, sigma)
    cdf_lower = normal_cdf(tvals, depth + beta, sigma) if beta > 0 else cdf_upper
    near_close = torch.clamp_min(mask_near_close * (w_cumsum - cdf_upper), 0)
    near_far = torch.clamp_min(mask_near_far * (cdf_lower - w_cumsum), 0)
    return {'empty': [(((mask_empty * w) ** 2).sum(), mask_empty.sum())],
            'near': [((near_close**2).sum(), mask_near_close.sum()), ((near_far**2).sum(), mask_near_far.sum())]}


def lossfun_depth_weight_CDF(rays, tvals_, w, eps, uncertain=False, beta=0., *, sigma_from_eps=False):
    """Probabilistically bounded ray weights (the method): (empty, near) [1] for depth [B, 1] (0 = none).

    W = cumsum(w) is bounded above by Phi(t; D - beta, sigma) on (D - 3 sigma, D) and below by
    Phi(t; D + beta, sigma) on (D, D + 3 sigma); empty = mean of w^2 before D - 3 sigma. sigma is
    0.03 as in the code (eps ignored), or eps with sigma_from_eps (the write-up's epsilon).
    `uncertain` is accepted for the fork's signature and unused.
    """
    return _combine(depth_weight_CDF_terms(rays, tvals_, w, eps, beta, sigma_from_eps=sigma_from_eps), w)


def depth_weight_CDF_test_terms(rays, tvals_, w, eps):
    """lossfun_depth_weight_CDF_test as {'empty': [], 'near': [(sum [], count [])]}."""
    depth = rays.depth
    tvals = 0.5 * (tvals_[..., :-1] + tvals_[..., 1:])
    sigma = 0.03
    valid = depth > 0
    mask_near = ((tvals < depth) & valid).to(w.dtype)
    mask_far = ((tvals > depth) & valid).to(w.dtype)
    cdf = torch.distributions.Normal(depth, sigma, validate_args=False).cdf(tvals)
    w_cumsum = torch.cumsum(w, dim=-1)
    near = torch.clamp_min(mask_near * (w_cumsum - cdf), 0)
    far = torch.clamp_min(mask_far * (cdf - w_cumsum), 0)
    return {'empty': [], 'near': [((near**2).sum() + (far**2).sum(), mask_far.sum() + mask_near.sum())]}


def lossfun_depth_weight_CDF_test(rays, tvals_, w, eps, uncertain=False):
    """The fork's open-interval CDF bound (before / after D, one normaliser): (zeros [1], bound [1])."""
    bound = _combine(depth_weight_CDF_test_terms(rays, tvals_, w, eps), w)[1]
    return torch.zeros_like(bound), bound


def ds_nerf_terms(rays, tvals_, w, sigma):
    """lossfun_ds_nerf as {'empty': [], 'near': [(sum [], count [])]}."""
    depth = rays.depth
    tvals = 0.5 * (tvals_[..., :-1] + tvals_[..., 1:])
    dt = tvals_[..., 1:] - tvals_[..., :-1]
    valid = (depth > 0).to(w.dtype)
    # + 1e-5 as the fork's commented-out version: log(0) where a weight vanishes.
    kl = (-torch.log(w + 1e-5) * torch.exp(-(tvals - depth) ** 2 / (2 * sigma**2)) * dt).sum(-1, keepdim=True)
    return {'empty': [], 'near': [((kl * valid).sum(), valid.sum())]}


def lossfun_ds_nerf(rays, tvals_, w, sigma):
    """DS-NeRF's ray-termination KL loss (Deng et al. 2022, eq. 8), OUR re-implementation (the fork
    has none): mean over rays with depth > 0 of sum_k -log(w_k) exp(-(t_k - D)^2 / (2 sigma^2)) dt_k.

    Returns (zeros [1], kl [1]) in the (empty, near) slots.
    """
    loss = _combine(ds_nerf_terms(rays, tvals_, w, sigma), w)[1]
    return torch.zeros_like(loss), loss


def searchsorted(a, v):
    """(idx_lo, idx_hi) [..., M] with a[idx_lo] <= v < a[idx_hi] (clamped to a's ends): a [..., N], v [..., M]."""
    i = torch.arange(a.shape[-1], device=a.device)
    v_ge_a = v[..., None, :] >= a[..., :, None]
    idx_lo = torch.max(torch.where(v_ge_a, i[:, None], i[:1, None]), -2).values
    idx_hi = torch.min(torch.where(~v_ge_a, i[:, None], i[-1:, None]), -2).values
    return idx_lo, idx_hi


def inner_outer(t0, t1, y1):
    """Inner and outer measures on the intervals t0 [..., N+1] of the step function (t1, y1): [..., N] each."""
    cy1 = torch.cat([torch.zeros_like(y1[..., :1]), torch.cumsum(y1, dim=-1)], dim=-1)
    idx_lo, idx_hi = searchsorted(t1, t0)
    cy1_lo = torch.gather(cy1, -1, idx_lo)
    cy1_hi = torch.gather(cy1, -1, idx_hi)
    y0_outer = cy1_hi[..., 1:] - cy1_lo[..., :-1]
    y0_inner = torch.where(idx_hi[..., :-1] <= idx_lo[..., 1:], cy1_lo[..., 1:] - cy1_hi[..., :-1], 0)
    return y0_inner, y0_outer


def lossfun_outer(t, w, t_env, w_env, eps=_EPS16):
    """Proposal loss (mip-NeRF 360 eq. 13): max(0, w - w_outer)^2 / (w + eps), eps = fp16 eps: [B, N]."""
    _, w_outer = inner_outer(t, t_env, w_env)
    return torch.clamp_min(w - w_outer, 0) ** 2 / (w + eps)
