"""A stand-in accelerator for CPU-only machines: device mixes raise, host syncs are counted.

Why the `meta` device and not FakeTensorMode on `cuda`: on a CPU-only torch build a fake `cuda`
tensor can be made by a factory, but `Tensor.to('cuda')` and the autograd engine both ask for
the CUDA device guard ("PyTorch is not linked with support for cuda devices"; backward aborts the
process), so no training step can run that way. `meta` tensors have shapes, dtypes and autograd
but no data, so a whole training step (forward, losses, backward, Adam, the LR schedule) runs on
them in milliseconds. Meta alone lets some mixes through (a CPU tensor indexed with meta indices
returns a CPU tensor, where CUDA raises), so `StandInAccelerator` checks every torch call:

- the non-scalar tensors of one call must share a device (0-dim CPU tensors may join any call, as
  they may on CUDA), apart from the calls that move data (`to`, `copy_`, `cpu`, ...);
- a random draw must use a generator of the device it draws on (CUDA's rule); the stand-in's
  generators are CPU generators that report the stand-in device, since torch has no meta ones;
- every host synchronisation of a stand-in tensor (`item`, `bool`, `int`, `float`, `tolist`,
  `cpu`, `numpy`, ...) is recorded with its call site and answered with zeros, so that N steps
  can run and the test can assert that the count is 0;
- every upload of host data to the stand-in (`Tensor.to`, `torch.tensor` / `as_tensor` of host
  data with the stand-in as device) is recorded in `uploads`: from pageable memory CUDA copies
  them synchronously, so a step should make none.
"""

import contextlib
import dataclasses
import traceback

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree

DEVICE = torch.device('meta')


class DeviceMismatchError(RuntimeError):
    """Tensors of two devices met in one call (CUDA would raise, or copy behind the user's back)."""


class StandInGenerator(torch.Generator):
    """A CPU generator that says it belongs to the stand-in device (torch has no meta generators)."""

    @property
    def device(self):
        return DEVICE


_REAL_GENERATOR = torch.Generator


class _GeneratorType(type):
    """isinstance(g, torch.Generator) stays true for real generators while the patch is active."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, _REAL_GENERATOR)


class _Generator(metaclass=_GeneratorType):
    """torch.Generator while the stand-in is active: device=stand-in gives a StandInGenerator."""

    def __new__(cls, device='cpu'):
        if torch.device(device).type == DEVICE.type:
            return StandInGenerator()
        return _REAL_GENERATOR(device)


_T = torch.Tensor
SYNCS = {
    _T.item: 'item', _T.__bool__: '__bool__', _T.__int__: '__int__', _T.__float__: '__float__',
    _T.__index__: '__index__', _T.tolist: 'tolist', _T.cpu: 'cpu', _T.numpy: 'numpy',
    _T.__array__: '__array__',
}
# Calls whose purpose is to move data between devices.
MOVES = {_T.to, _T.copy_, _T.cpu, _T.cuda, _T.type_as, _T.numpy, _T.__array__, _T.new_tensor,
         torch.as_tensor, torch.tensor, torch._has_compatible_shallow_copy_type,
         _T.data.__set__, torch.utils.swap_tensors}
UPLOADS = {_T.to, _T.cuda, torch.tensor, torch.as_tensor}
INDEXING = {_T.__getitem__, _T.__setitem__}
RANDOM = {torch.rand, torch.randn, torch.randint, torch.randperm, torch.normal, torch.bernoulli,
          torch.multinomial, torch.rand_like, torch.randn_like, torch.randint_like, _T.uniform_,
          _T.normal_, _T.random_, _T.exponential_, _T.bernoulli_, _T.geometric_, _T.cauchy_,
          _T.log_normal_}


def _name(func):
    return getattr(func, '__qualname__', None) or getattr(func, '__name__', repr(func))


def _zeros_like_sync(name, tensor):
    """The value a sync of `tensor` answers with: zeros of the right type and shape."""
    zeros = torch.zeros(tensor.shape, dtype=tensor.dtype)
    if name in ('numpy', '__array__'):
        return np.zeros(tuple(tensor.shape), dtype=zeros.numpy().dtype)
    if name == 'cpu':
        return zeros
    if name == 'tolist':
        return zeros.tolist()
    return {'__bool__': False, '__int__': 0, '__index__': 0, '__float__': 0.0}.get(
        name, zeros.reshape(()).item() if zeros.numel() == 1 else None)


@dataclasses.dataclass
class Sync:
    """One host synchronisation: which call, on what tensor, from where."""

    name: str
    shape: tuple
    where: str

    def __str__(self):
        return f'Tensor.{self.name} of a {list(self.shape)} tensor at {self.where}'


def _caller():
    """The innermost call site outside torch and this file, as 'file:line in function'."""
    for frame in reversed(traceback.extract_stack()):
        if '/torch/' not in frame.filename and frame.filename != __file__:
            return f'{frame.filename}:{frame.lineno} in {frame.name}'
    return '?'


class StandInAccelerator(TorchFunctionMode):
    """Checks every torch call for device mixes and records host syncs of stand-in tensors.

    Use through `stand_in_accelerator()`. strict=True raises on the first sync instead of
    answering it with zeros.
    """

    def __init__(self, strict=False):
        super().__init__()
        self.strict = strict
        self.syncs = []
        self.uploads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [x for x in _pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
        if func in SYNCS and tensors and tensors[0].device == DEVICE:
            sync = Sync(SYNCS[func], tuple(tensors[0].shape), _caller())
            if self.strict:
                raise DeviceMismatchError(f'host synchronisation: {sync}')
            self.syncs.append(sync)
            return _zeros_like_sync(SYNCS[func], tensors[0])
        if func not in MOVES:
            checked = tensors
            if func in INDEXING and tensors and tensors[0].device.type != 'cpu':
                # A device tensor may be indexed with host indices (torch copies them over);
                # a host tensor indexed with device indices is an error on CUDA.
                checked = [tensors[0]] + [t for t in tensors[1:] if t.device.type != 'cpu']
            devices = {t.device for t in checked if not (t.device.type == 'cpu' and t.dim() == 0)}
            if len(devices) > 1:
                shapes = [(str(t.device), list(t.shape)) for t in tensors]
                raise DeviceMismatchError(
                    f'{_name(func)} at {_caller()} mixes devices {sorted(map(str, devices))}: {shapes}')
        out = func(*args, **kwargs)
        if func in UPLOADS and isinstance(out, torch.Tensor) and out.device == DEVICE and (
                not tensors or tensors[0].device.type == 'cpu'):
            self.uploads.append(Sync('upload', tuple(out.shape), _caller()))
        generator = kwargs.get('generator')
        if func in RANDOM and generator is not None and isinstance(out, torch.Tensor):
            if generator.device.type != out.device.type:
                raise DeviceMismatchError(
                    f'{_name(func)} at {_caller()} draws on {out.device} with a generator of '
                    f'{generator.device}')
        return out


@contextlib.contextmanager
def stand_in_accelerator(strict=False):
    """Runs the block with `DEVICE` as the accelerator; yields the StandInAccelerator (`.syncs`).

    While active, torch.Generator(device=DEVICE) makes a StandInGenerator.
    """
    mode = StandInAccelerator(strict=strict)
    torch.Generator = _Generator
    try:
        with mode:
            yield mode
    finally:
        torch.Generator = _REAL_GENERATOR


def to_device(tree, device=DEVICE):
    """Every tensor of a pytree (dicts, lists, tuples, namedtuples) moved to `device`."""
    return _pytree.tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, tree)


def devices_of(tree):
    """The set of devices of the tensors in a pytree."""
    return {x.device for x in _pytree.tree_leaves(tree) if isinstance(x, torch.Tensor)}


def tensor_attributes_off_device(obj, device=DEVICE):
    """Names of the tensor attributes of `obj` (one level of dicts/lists/tuples too) not on device."""
    off = []
    for name, value in vars(obj).items():
        leaves = _pytree.tree_leaves(value) if isinstance(value, (dict, list, tuple)) else [value]
        if any(isinstance(x, torch.Tensor) and x.dim() > 0 and x.device != device for x in leaves):
            off.append(name)
    return off
