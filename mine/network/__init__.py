"""Encoder, decoder, losses and SSIM of MINE."""
