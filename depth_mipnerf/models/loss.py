"""The fork's training loss (MSELoss: Charbonnier RGB + depth, normal, distortion, ray-weight and
proposal terms) and its metric and normal-loss helpers."""

import torch
from torch import nn


def charbonnier_loss(x, y, eps=0.001):
    """mean(sqrt((x - y)^2 + eps)), eps not squared as in the fork: [...] -> []."""
    return torch.mean(torch.sqrt((x - y) ** 2 + eps))


def calc_mse(x, y):
    """Mean squared error: [...] -> []."""
    return torch.mean((x - y) ** 2)


def calc_psnr(x, y):
    """PSNR in dB for values in [0, 1]: [...] -> []."""
    return -10.0 * torch.log10(calc_mse(x, y))


def norm_loss_func(pred_, gt_, w_, self_supervised=False):
    """Weight-averaged (1 - cos) between predicted normals [B, N, 3] and GT [B, 3] (or [B, N, 3]): -> [].

    Supervised: rays whose GT normal is all zero are masked out; the sum is divided by the valid rays.
    """
    if self_supervised:
        return torch.mean((w_ * (1.0 - torch.sum(gt_ * pred_, dim=-1))).sum(dim=-1))
    mask = torch.any(gt_ != 0, dim=-1)
    w = w_ * mask[..., None]
    loss = torch.sum(w * (1 - torch.sum(gt_[:, None, :] * pred_, dim=-1)), -1)
    return loss.sum() / mask.sum()


def chord_distance(pred_, gt_, w_, self_supervised=False):
    """Weight-averaged half squared chord |n_gt - n_pred|^2 / 2: pred [B, N, 3], gt [B, 3] (or [B, N, 3]) -> []."""
    if self_supervised:
        return torch.mean(torch.sum(w_ * 0.5 * torch.norm(gt_ - pred_, dim=-1) ** 2, dim=1))
    mask = torch.any(gt_ != 0, dim=-1)
    w = w_ * mask[..., None]
    loss = torch.norm(gt_[:, None, :] - pred_, dim=-1) ** 2 / 2
    return torch.sum(torch.sum(w * loss, dim=1)) / mask.sum()


def orientation_loss_func(pred_, gt_, w_, dirs):
    """Ref-NeRF orientation loss sum w min(0, n . -d)^2 over rays with a GT normal, per valid ray: -> []."""
    mask = torch.any(gt_ != 0, dim=-1)
    w = w_ * mask[..., None]
    n_dot_v = (pred_ * -dirs[..., None, :]).sum(dim=-1)
    return torch.sum((w * torch.clamp_max(n_dot_v, 0.0) ** 2).sum(dim=-1)) / mask.sum()


class MSELoss(nn.Module):
    """The fork's total loss; hparams holds its flattened yaml keys ('loss.lambda_depth', ...).

    Port key 'loss.depth_divide_acc' (default False, the fork): the L2 depth term compares
    sum(w t) / acc instead of sum(w t) with the GT depth.
    """

    def __init__(self, hparams):
        super().__init__()
        self.lambda_depth = hparams['loss.lambda_depth']
        self.lambda_normal = hparams['loss.lambda_normal']
        self.lambda_distortion = hparams['loss.lambda_distortion']
        self.lambda_orientation = hparams['loss.lambda_orientation']
        self.coarse_mult_loss = hparams['loss.coarse_loss_mult']
        self.lambda_empty_loss = hparams['loss.lambda_empty_loss']
        self.lambda_near_loss = hparams['loss.lambda_near_loss']
        self.lambda_prop_loss = hparams['loss.lambda_prop_loss']
        self.prop_mlp = hparams['nerf.mlp.prop_mlp']
        self.mlp_normals = hparams['nerf.mlp.mlp_normals']
        self.depth_divide_acc = hparams.get('loss.depth_divide_acc', False)

    def forward(self, results, targets, mask=None):
        """results: MipNerf's dict; targets: rgb [B, 3], depth [B], normal [B, 3], dirs [B, 3],
        dmask [B] (True = no depth). mask [B] (bool) restricts the RGB terms. -> dict of losses."""
        dmask = targets['dmask']
        depth = results['depth']
        if self.depth_divide_acc:
            # acc == 0 divides by 1: the ray rendered nothing and its depth sum is 0 already.
            depth = depth / torch.where(results['acc'] > 0, results['acc'], torch.ones_like(depth))
        depth_loss = nn.functional.mse_loss(depth[~dmask], targets['depth'][~dmask])
        if not (~dmask).any():
            depth_loss = torch.zeros_like(depth_loss)  # No ray with depth: the mean of nothing is NaN.
        if self.mlp_normals:
            normal_loss = (norm_loss_func(results['mlp_normals'], results['density_normals'], results['weights'], True)
                           + norm_loss_func(results['mlp_normals'], targets['normal'], results['weights'])) / 2
            chord_loss = (chord_distance(results['mlp_normals'], results['density_normals'], results['weights'], True)
                          + chord_distance(results['mlp_normals'], targets['normal'], results['weights'])) / 2
        else:
            normal_loss = norm_loss_func(results['density_normals'], targets['normal'], results['weights'])
            chord_loss = chord_distance(results['density_normals'], targets['normal'], results['weights'])
        orientation_loss = orientation_loss_func(results['density_normals'], targets['normal'],
                                                 results['weights'], targets['dirs'])
        distortion_loss = results['distortion'].mean()
        rgb_fine, rgb_gt = results['rgb_fine'], targets['rgb']
        rgb_coarse = results.get('rgb_coarse')
        if mask is not None:
            rgb_fine, rgb_gt = rgb_fine[mask], rgb_gt[mask]
            rgb_coarse = rgb_coarse[mask] if rgb_coarse is not None else None
        rgb_loss = charbonnier_loss(rgb_fine, rgb_gt)
        if not self.prop_mlp:
            rgb_loss = rgb_loss + self.coarse_mult_loss * calc_mse(rgb_coarse, rgb_gt)
        with torch.no_grad():
            psnr = calc_psnr(rgb_fine, rgb_gt)
        weighted = [(self.lambda_depth, depth_loss), (self.lambda_normal, normal_loss),
                    (self.lambda_orientation, orientation_loss), (self.lambda_distortion, distortion_loss),
                    (self.lambda_near_loss, results['near_loss']), (self.lambda_empty_loss, results['empty_loss'])]
        # Terms of weight 0 are left out of the sum: on a batch without GT normals (or depth) they are
        # 0/0 = NaN, and 0 * NaN would poison the total (the fork's data always had both).
        total = rgb_loss + sum(lam * term for lam, term in weighted if lam != 0)
        losses = {'total': total, 'rgb': rgb_loss, 'depth': depth_loss, 'normal': normal_loss, 'psnr': psnr,
                  'orientation': orientation_loss, 'distortion': distortion_loss, 'empty': results['empty_loss'],
                  'near': results['near_loss'], 'chord': chord_loss}
        if self.prop_mlp:
            losses['envelope'] = results['envelope_loss'].mean()
            losses['total'] = losses['total'] + self.lambda_prop_loss * losses['envelope']
        else:
            losses['envelope'] = torch.zeros_like(rgb_loss)
        return losses
