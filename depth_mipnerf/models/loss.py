# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""The fork's training loss (MSELoss: Charbonnier RGB + depth, normal, distortion, ray-weight and
proposal terms) and its metric and normal-loss helpers.

Every term is a sum over the batch divided by a count (`*_terms` give the pair): a batch split
into micro-batches (train.grad_accum_steps) sums the pieces and divides once, exactly as one shot.
"""

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


def _ray_mean_terms(per_ray):
    """(sum [], count []) of the mean of per_ray [B]."""
    return per_ray.sum(), torch.full((), per_ray.numel(), dtype=per_ray.dtype, device=per_ray.device)


def norm_loss_terms(pred_, gt_, w_, self_supervised=False):
    """(sum [], count []) of norm_loss_func (its value is sum / count)."""
    if self_supervised:
        return _ray_mean_terms((w_ * (1.0 - torch.sum(gt_ * pred_, dim=-1))).sum(dim=-1))
    mask = torch.any(gt_ != 0, dim=-1)
    w = w_ * mask[..., None]
    loss = torch.sum(w * (1 - torch.sum(gt_[:, None, :] * pred_, dim=-1)), -1)
    return loss.sum(), mask.sum().to(loss.dtype)


def norm_loss_func(pred_, gt_, w_, self_supervised=False):
    """Weight-averaged (1 - cos) between predicted normals [B, N, 3] and GT [B, 3] (or [B, N, 3]): -> [].

    Supervised: rays whose GT normal is all zero are masked out; the sum is divided by the valid rays.
    """
    total, count = norm_loss_terms(pred_, gt_, w_, self_supervised)
    return total / count


def chord_terms(pred_, gt_, w_, self_supervised=False):
    """(sum [], count []) of chord_distance."""
    if self_supervised:
        return _ray_mean_terms(torch.sum(w_ * 0.5 * torch.norm(gt_ - pred_, dim=-1) ** 2, dim=1))
    mask = torch.any(gt_ != 0, dim=-1)
    w = w_ * mask[..., None]
    loss = torch.norm(gt_[:, None, :] - pred_, dim=-1) ** 2 / 2
    return torch.sum(torch.sum(w * loss, dim=1)), mask.sum().to(loss.dtype)


def chord_distance(pred_, gt_, w_, self_supervised=False):
    """Weight-averaged half squared chord |n_gt - n_pred|^2 / 2: pred [B, N, 3], gt [B, 3] (or [B, N, 3]) -> []."""
    total, count = chord_terms(pred_, gt_, w_, self_supervised)
    return total / count


def orientation_terms(pred_, gt_, w_, dirs):
    """(sum [], count []) of orientation_loss_func."""
    mask = torch.any(gt_ != 0, dim=-1)
    w = w_ * mask[..., None]
    n_dot_v = (pred_ * -dirs[..., None, :]).sum(dim=-1)
    return torch.sum((w * torch.clamp_max(n_dot_v, 0.0) ** 2).sum(dim=-1)), mask.sum().to(w.dtype)


def orientation_loss_func(pred_, gt_, w_, dirs):
    """Ref-NeRF orientation loss sum w min(0, n . -d)^2 over rays with a GT normal, per valid ray: -> []."""
    total, count = orientation_terms(pred_, gt_, w_, dirs)
    return total / count


def _sum_pairs(pairs):
    """(sum of the sums, sum of the counts) of [(sum, count), ...]."""
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def sum_pieces(pieces_list):
    """The pieces of several micro-batches of one batch, added term by term."""
    return {k: _sum_pairs([pieces[k] for pieces in pieces_list]) for k in pieces_list[0]}


class MSELoss(nn.Module):
    """The fork's total loss; hparams holds its flattened yaml keys ('loss.lambda_depth', ...).

    Port key 'loss.depth_divide_acc' (default False, the fork): the L2 depth term compares
    sum(w t) / acc instead of sum(w t) with the GT depth.
    """

    # Terms whose count is clamped at 1 (the mean of nothing is 0, as the fork's depth terms).
    CLAMPED = ('depth', 'empty', 'near')

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

    def forward(self, results, targets, mask=None, step=1):
        """results: MipNerf's dict; targets: rgb [B, 3], depth [B], normal [B, 3], dirs [B, 3],
        dmask [B] (True = no depth). -> dict of losses (total [1], the others []).

        mask and step are taken for the fork's signature and unused, as there: the fork's forward
        resets mask to None (its validation passes one), so the RGB terms cover every ray
        (`pieces(mask=...)` restricts them). 'normal_loss_lowerbounded' and 'incomplete' are the
        fork's two entries that are always 0 (its lower-bound normal loss is switched off).
        """
        losses = self.combine(self.pieces(results, targets))
        zero = torch.zeros_like(losses['rgb'])
        return {**losses, 'normal_loss_lowerbounded': zero, 'incomplete': zero}

    def pieces(self, results, targets, mask=None):
        """{term: (sum [], count [])} of one batch; `combine` turns them into the losses.

        Depth terms are '<empty|near>/<i>' (the model's results['depth_terms']); a results dict
        without them (the fork's) carries the normalised empty_loss / near_loss (count 1).
        """
        weights = results['weights']
        valid = (~targets['dmask']).to(weights.dtype)
        depth = results['depth']
        if self.depth_divide_acc:
            # acc == 0 divides by 1: the ray rendered nothing and its depth sum is 0 already.
            depth = depth / torch.where(results['acc'] > 0, results['acc'], torch.ones_like(depth))
        # Masked sums, not depth[~dmask]: boolean indexing would wait for the device to count.
        pieces = {'depth': ((valid * (depth - targets['depth']) ** 2).sum(), valid.sum())}
        normals, gt = results['density_normals'], targets['normal']
        if self.mlp_normals:
            pred = results['mlp_normals']
            pieces.update({'normal_ss': norm_loss_terms(pred, normals, weights, True),
                           'normal': norm_loss_terms(pred, gt, weights),
                           'chord_ss': chord_terms(pred, normals, weights, True),
                           'chord': chord_terms(pred, gt, weights)})
        else:
            pieces.update({'normal': norm_loss_terms(normals, gt, weights),
                           'chord': chord_terms(normals, gt, weights)})
        pieces['orientation'] = orientation_terms(normals, gt, weights, targets['dirs'])
        pieces['distortion'] = _ray_mean_terms(results['distortion'])
        keep = torch.ones_like(weights[:, :1]) if mask is None else mask[:, None].to(weights.dtype)
        rgb_gt = targets['rgb']
        n_rgb = keep.sum() * rgb_gt.shape[-1]
        pieces['rgb'] = ((keep * torch.sqrt((results['rgb_fine'] - rgb_gt) ** 2 + 0.001)).sum(), n_rgb)
        # The squared error of the fine colour: PSNR (no gradient).
        pieces['mse'] = ((keep * (results['rgb_fine'].detach() - rgb_gt) ** 2).sum(), n_rgb)
        if not self.prop_mlp:
            pieces['rgb_coarse'] = ((keep * (results['rgb_coarse'] - rgb_gt) ** 2).sum(), n_rgb)
        else:
            envelope = results['envelope_loss']
            pieces['envelope'] = (envelope.sum(), torch.full((), envelope.numel(), dtype=envelope.dtype,
                                                             device=envelope.device))
        one = torch.ones((), dtype=weights.dtype, device=weights.device)
        terms = results.get('depth_terms') or {'empty': [(results['empty_loss'].sum(), one)],
                                                'near': [(results['near_loss'].sum(), one)]}
        for name in ('empty', 'near'):
            pieces.update({f'{name}/{i}': pair for i, pair in enumerate(terms[name])})
        return pieces

    def combine(self, pieces, counts=None):
        """The losses dict (total, rgb, depth, normal, psnr, ...) of pieces: each term sum / count.

        counts: {term: count} to divide by instead of the pieces' own (a micro-batch's share of
        its whole batch: then the losses of the micro-batches add up to the batch's).
        """
        def ratio(name):
            total, count = pieces[name]
            count = count if counts is None else counts[name]
            if name.split('/')[0] in self.CLAMPED:
                count = torch.clamp_min(count, 1.)
            return total / count

        def depth_loss(name):
            names = [k for k in pieces if k.startswith(name + '/')]
            return sum((ratio(k) for k in names), torch.zeros_like(pieces['rgb'][0])).reshape(1)

        rgb_loss = ratio('rgb')
        if not self.prop_mlp:
            rgb_loss = rgb_loss + self.coarse_mult_loss * ratio('rgb_coarse')
        if self.mlp_normals:
            normal_loss = (ratio('normal_ss') + ratio('normal')) / 2
            chord_loss = (ratio('chord_ss') + ratio('chord')) / 2
        else:
            normal_loss, chord_loss = ratio('normal'), ratio('chord')
        losses = {'rgb': rgb_loss, 'depth': ratio('depth'), 'normal': normal_loss,
                  'psnr': -10.0 * torch.log10(ratio('mse')), 'orientation': ratio('orientation'),
                  'distortion': ratio('distortion'), 'empty': depth_loss('empty'), 'near': depth_loss('near'),
                  'chord': chord_loss}
        weighted = [(self.lambda_depth, 'depth'), (self.lambda_normal, 'normal'),
                    (self.lambda_orientation, 'orientation'), (self.lambda_distortion, 'distortion'),
                    (self.lambda_near_loss, 'near'), (self.lambda_empty_loss, 'empty')]
        # Terms of weight 0 are left out of the sum: on a batch without GT normals (or depth) they are
        # 0/0 = NaN, and 0 * NaN would poison the total (the fork's data always had both).
        # [1] as the fork's, whose [1] empty / near terms are in the sum whatever their weights.
        total = (rgb_loss + sum(lam * losses[name] for lam, name in weighted if lam != 0)).reshape(1)
        if self.prop_mlp:
            losses['envelope'] = ratio('envelope')
            total = total + self.lambda_prop_loss * losses['envelope']
        else:
            losses['envelope'] = torch.zeros_like(rgb_loss)
        return {'total': total, **losses}
