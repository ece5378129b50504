"""Peak-memory prediction of a training step, and micro-batching (gradient accumulation) helpers.

The activation term is measured on the fly: one forward and loss on a few rays, with
`torch.autograd.graph.saved_tensors_hooks` adding up the bytes autograd keeps for the backward
pass. That works on any device (also the CPU and the meta stand-in of the tests) and scales
linearly in the number of rays of a micro-batch, which is what dominates a NeRF step.
"""

import torch
from torch.utils import _pytree

GIB = 2.0**30


def saved_bytes(fn):
    """(fn(), bytes of the distinct tensors autograd saves for backward while fn runs)."""
    seen = {}

    def pack(tensor):
        # Keyed by storage and view: the same saved tensor is counted once.
        if tensor.device.type != 'meta' and tensor.untyped_storage().nbytes():
            key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        else:
            key = id(tensor)
        seen[key] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn()
    return out, sum(seen.values())


def state_bytes(parameters, adam=True):
    """Bytes of the parameters, their gradients and (with adam) Adam's two moments."""
    n = sum(p.numel() * p.element_size() for p in parameters)
    return n * (4 if adam else 2)


def predicted_peak_bytes(parameters, bytes_per_ray, rays_per_micro_batch, adam=True):
    """Parameters + gradients + optimizer state + the activations of one micro-batch, in bytes."""
    return state_bytes(parameters, adam) + bytes_per_ray * rays_per_micro_batch


def describe_prediction(parameters, bytes_per_ray, batch_size, grad_accum_steps, probe_rays):
    """The start-up line of a trainer: predicted peak memory for its batch and micro-batch."""
    micro = batch_size // grad_accum_steps
    total = predicted_peak_bytes(parameters, bytes_per_ray, micro)
    return (f'predicted peak memory {total / GIB:.2f} GiB: {micro} rays per micro-batch '
            f'({batch_size} rays / grad_accum_steps {grad_accum_steps}) x {bytes_per_ray / 2**10:.1f} '
            f'KiB per ray (saved for backward, measured on the fly on {probe_rays} rays) + '
            f'{state_bytes(parameters) / GIB:.2f} GiB of parameters, gradients and Adam moments')


def check_grad_accum_steps(batch_size, grad_accum_steps, setting='Config.grad_accum_steps',
                           batch_setting='Config.batch_size'):
    """Raises ValueError naming the settings unless grad_accum_steps >= 1 divides batch_size."""
    if not isinstance(grad_accum_steps, int) or grad_accum_steps < 1:
        raise ValueError(f'{setting} must be a positive integer, got {grad_accum_steps!r}')
    if batch_size % grad_accum_steps:
        raise ValueError(f'{setting}={grad_accum_steps} does not divide {batch_setting}={batch_size}: '
                         'every micro-batch must hold the same number of rays')


def split_batch(tree, num_chunks):
    """A pytree of tensors [N, ...] split into num_chunks pytrees of [N / num_chunks, ...] (dim 0).

    Non-tensor leaves are shared by every chunk. N must divide by num_chunks.
    """
    leaves, spec = _pytree.tree_flatten(tree)
    sizes = {x.shape[0] for x in leaves if isinstance(x, torch.Tensor) and x.dim() > 0}
    if any(size % num_chunks for size in sizes):
        raise ValueError(f'a batch of {sorted(sizes)} rays does not split into {num_chunks} micro-batches')
    split = [x.chunk(num_chunks) if isinstance(x, torch.Tensor) and x.dim() > 0 else [x] * num_chunks
             for x in leaves]
    return [_pytree.tree_unflatten([s[i] for s in split], spec) for i in range(num_chunks)]


def fits_free_memory(nbytes, device, fraction=0.5):
    """Whether nbytes take at most `fraction` of the free memory of a CUDA device."""
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= fraction * free
