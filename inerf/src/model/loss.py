# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF's losses: Neural Volumes alpha prior, RGB L1/L2, and Kendall's uncertainty loss."""

import torch


class AlphaLossNV2(torch.nn.Module):
    """Neural Volumes' alpha prior log(a) + log(1 - a), from epoch init_epoch on (0 before)."""

    def __init__(self, lambda_alpha, clamp_alpha, init_epoch, force_opaque=False):
        super().__init__()
        self.lambda_alpha = lambda_alpha
        self.clamp_alpha = clamp_alpha
        self.init_epoch = init_epoch
        self.force_opaque = force_opaque
        if force_opaque:
            self.bceloss = torch.nn.BCELoss()
        self.register_buffer("epoch", torch.tensor(0, dtype=torch.long), persistent=True)

    def sched_step(self, num=1):
        """Advances the epoch counter."""
        self.epoch += num

    def forward(self, alpha_fine):
        """alpha_fine (...) -> scalar loss (shape (1,) when inactive)."""
        if self.lambda_alpha > 0.0 and self.epoch.item() >= self.init_epoch:
            alpha_fine = torch.clamp(alpha_fine, 0.01, 0.99)
            if self.force_opaque:
                return self.lambda_alpha * self.bceloss(alpha_fine, torch.ones_like(alpha_fine))
            alpha_loss = torch.log(alpha_fine) + torch.log(1.0 - alpha_fine)
            alpha_loss = torch.clamp_min(alpha_loss, -self.clamp_alpha)
            return self.lambda_alpha * alpha_loss.mean()
        return torch.zeros(1, device=alpha_fine.device)


def get_alpha_loss(conf):
    """AlphaLossNV2 from a HOCON `loss.alpha` block."""
    return AlphaLossNV2(conf.get_float("lambda_alpha"), conf.get_float("clamp_alpha"),
                        conf.get_int("init_epoch"), force_opaque=conf.get_bool("force_opaque", False))


class RGBWithUncertainty(torch.nn.Module):
    """Kendall & Gal's loss: mean(err / beta) + mean(log beta)."""

    def __init__(self, conf):
        super().__init__()
        self.element_loss = (torch.nn.L1Loss(reduction="none") if conf.get_bool("use_l1")
                             else torch.nn.MSELoss(reduction="none"))

    def forward(self, outputs, targets, betas):
        """outputs, targets (B, 3), betas (B) -> scalar."""
        weighted_element_err = torch.mean(self.element_loss(outputs, targets), -1) / betas
        return torch.mean(weighted_element_err) + torch.mean(torch.log(betas))


class RGBWithBackground(torch.nn.Module):
    """Background-weighted loss: mean(err / (1 + lambda_bg)) + mean(log lambda_bg)."""

    def __init__(self, conf):
        super().__init__()
        self.element_loss = (torch.nn.L1Loss(reduction="none") if conf.get_bool("use_l1")
                             else torch.nn.MSELoss(reduction="none"))

    def forward(self, outputs, targets, lambda_bg):
        """outputs, targets (B, 3), lambda_bg (B) -> scalar."""
        weighted_element_err = torch.mean(self.element_loss(outputs, targets), -1) / (1 + lambda_bg)
        return torch.mean(weighted_element_err) + torch.mean(torch.log(lambda_bg))


def get_rgb_loss(conf, coarse=True, using_bg=False, reduction="mean"):
    """L1 or MSE (conf.use_l1); the uncertainty loss for the fine net if conf.use_uncertainty."""
    if conf.get_bool("use_uncertainty", False) and not coarse:
        print("using loss with uncertainty")
        return RGBWithUncertainty(conf)
    print("using vanilla rgb loss")
    return torch.nn.L1Loss(reduction=reduction) if conf.get_bool("use_l1") else torch.nn.MSELoss(reduction=reduction)
