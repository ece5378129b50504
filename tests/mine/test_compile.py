"""torch.compile (inductor, CPU) of MINE's two networks gives eager's outputs and parameter gradients."""

import copy

import numpy as np
import pytest
import torch

from mine.network.monodepth2.depth_decoder import DepthDecoder
from mine.network.monodepth2.resnet_encoder import ResnetEncoder
from mine.utils import get_embedder


def _networks():
    """ResNet-18 encoder and a decoder with a 4-frequency disparity code, training mode (BatchNorm on batches)."""
    torch.manual_seed(0)
    encoder = ResnetEncoder(18, pretrained=False)
    embedder, dim = get_embedder(4)
    return encoder, DepthDecoder(np.array(encoder.num_ch_enc), embedder, dim)


def _step(encoder, decoder, images, disparity, weights):
    """MPIs of 4 scales and the gradients of a fixed weighted sum of them: -> (outputs, {name: grad})."""
    outputs = decoder(list(encoder(images)), disparity)
    mpis = [outputs[("disp", s)] for s in range(4)]
    sum(torch.sum(m * w) for m, w in zip(mpis, weights)).backward()
    named = [*encoder.named_parameters(prefix="encoder"), *decoder.named_parameters(prefix="decoder")]
    return [m.detach() for m in mpis], {n: p.grad for n, p in named if p.grad is not None}


@pytest.mark.slow
def test_compiled_networks_match_eager():
    encoder, decoder = _networks()
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 128, 128, generator=generator)
    disparity = torch.sort(torch.rand(2, 4, generator=generator), dim=1, descending=True).values
    weights = [torch.rand(2, 4, 4, 128 // 2**s, 128 // 2**s, generator=generator) for s in range(4)]
    eager_out, eager_grads = _step(encoder, decoder, images, disparity, weights)
    compiled_encoder, compiled_decoder = copy.deepcopy(encoder), copy.deepcopy(decoder)
    for net in (compiled_encoder, compiled_decoder):
        net.zero_grad()
        net.compile()  # in place, as training.compile does
    out, grads = _step(compiled_encoder, compiled_decoder, images, disparity, weights)
    assert grads.keys() == eager_grads.keys() and len(grads) == 120
    # Relative to each tensor's norm: inductor fuses the BatchNorms and reorders their batch sums, which
    # moves single elements near zero (the density |x| + 1e-4) by up to 6e-5.
    errors = {f"mpi scale {s}": _relative(a, b) for s, (a, b) in enumerate(zip(out, eager_out))}
    errors.update({name: _relative(grad, eager_grads[name]) for name, grad in grads.items()})
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-5, (worst, errors[worst])


def _relative(a, b):
    """||a - b|| / ||b||."""
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))
