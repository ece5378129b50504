"""Converts a multinerf (JAX/flax) checkpoint into a checkpoint of this port's train.py.

    python -m mipnerf360.scripts.convert_flax_checkpoint IN OUT_DIR \
        --gin_configs=mipnerf360/configs/360.gin [--gin_bindings='...']

IN is one of
  - the checkpoint folder multinerf's train.py writes (Config.checkpoint_dir; its newest
    `checkpoint_<step>` is read) or one such checkpoint. They hold multinerf's TrainState:
    {'step', 'params': {'params': {'NerfMLP_0': {'Dense_0': {'kernel', 'bias'}, ...},
    'PropMLP_0': ...}}, 'opt_state': {'0': {'count', 'mu', 'nu'}, '1': ...}}. The flax of
    multinerf's time writes msgpack files, decoded here without JAX or flax (a small msgpack
    reader for the subset flax writes). Newer flax writes orbax folders instead, read here with
    orbax-checkpoint when it is installed (it needs JAX); else export them to an .npz with the
    EXPORT_SNIPPET command below, where multinerf runs;
  - an .npz of the flattened parameters, keys such as 'NerfMLP_0/Dense_0/kernel' (a prefix such
    as 'params/' is allowed), which converts the parameters only; or of a whole flattened
    TrainState (keys 'step', 'params/params/...', 'opt_state/0/mu/params/...', as
    flax.traverse_util.flatten_dict(flax.serialization.to_state_dict(state), sep='/') gives).
OUT_DIR receives `checkpoint_<step>.pt` in the format of common/checkpoints.py, as
mipnerf360/train.py writes it: {'state': {'model', 'optimizer', 'step'}, 'rng_state'}. With
Config.checkpoint_dir = OUT_DIR, train.py resumes from it and eval.py / render.py render it.
The Adam moments (optax mu and nu, its count) become torch Adam's exp_avg, exp_avg_sq and step,
which follow the same update rule, so training resumes where multinerf stopped.

The model's layout comes from the gin configs (pass those the checkpoint was trained with);
every parameter is key- and shape-checked against it.
"""

import argparse
import os
import re
import struct

import gin
import numpy as np
import torch

from common import checkpoints
from mipnerf360.internal import configs, models, train_utils

# flax's msgpack extension types (flax/serialization.py).
_EXT_NDARRAY, _EXT_COMPLEX, _EXT_NPSCALAR = 1, 2, 3
_CHUNKED = '__msgpack_chunked_array__'
# A parameter leaf of the model; the `$` leaves out the Adam moments stored under other roots.
_PARAM_PATH = re.compile(r'(?:^|/)((?:NerfMLP_0|PropMLP_0)/Dense_\d+/(?:kernel|bias)'
                         r'|Embed_0/embedding|exposure_scaling_offsets/embedding)$')


class _Reader:
    """A msgpack decoder for what flax writes: maps, arrays, strings, bytes, numbers, ext types."""

    def __init__(self, data):
        self.data, self.pos = memoryview(data), 0

    def take(self, n):
        out = self.data[self.pos:self.pos + n]
        if len(out) < n:
            raise ValueError('truncated msgpack data')
        self.pos += n
        return out

    def unpack(self, fmt):
        return struct.unpack('>' + fmt, self.take(struct.calcsize('>' + fmt)))[0]

    def read(self):
        """The next object."""
        b = self.take(1)[0]
        if b <= 0x7f:
            return b
        if b >= 0xe0:
            return b - 0x100
        if 0x80 <= b <= 0x8f:
            return self.map(b & 0x0f)
        if 0x90 <= b <= 0x9f:
            return [self.read() for _ in range(b & 0x0f)]
        if 0xa0 <= b <= 0xbf:
            return str(self.take(b & 0x1f), 'utf-8')
        simple = {0xc0: None, 0xc2: False, 0xc3: True}
        if b in simple:
            return simple[b]
        sized = {0xc4: 'B', 0xc5: 'H', 0xc6: 'I'}  # bin 8/16/32
        if b in sized:
            return bytes(self.take(self.unpack(sized[b])))
        ext = {0xc7: 'B', 0xc8: 'H', 0xc9: 'I'}  # ext 8/16/32
        if b in ext:
            n = self.unpack(ext[b])
            return self.ext(self.unpack('b'), self.take(n))
        fixext = {0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16}
        if b in fixext:
            return self.ext(self.unpack('b'), self.take(fixext[b]))
        numbers = {0xca: 'f', 0xcb: 'd', 0xcc: 'B', 0xcd: 'H', 0xce: 'I', 0xcf: 'Q',
                   0xd0: 'b', 0xd1: 'h', 0xd2: 'i', 0xd3: 'q'}
        if b in numbers:
            return self.unpack(numbers[b])
        strings = {0xd9: 'B', 0xda: 'H', 0xdb: 'I'}
        if b in strings:
            return str(self.take(self.unpack(strings[b])), 'utf-8')
        if b in (0xdc, 0xdd):
            return [self.read() for _ in range(self.unpack('H' if b == 0xdc else 'I'))]
        if b in (0xde, 0xdf):
            return self.map(self.unpack('H' if b == 0xde else 'I'))
        raise ValueError(f'unsupported msgpack type byte 0x{b:02x}')

    def map(self, n):
        out = {}
        for _ in range(n):
            key = self.read()
            out[key] = self.read()
        return out

    def ext(self, code, payload):
        if code in (_EXT_NDARRAY, _EXT_NPSCALAR):
            shape, dtype, buffer = _Reader(payload).read()
            if isinstance(dtype, bytes):
                dtype = dtype.decode()
            if dtype == 'bfloat16':
                # The upper half of a float32: widen it (numpy has no bfloat16).
                bits = np.frombuffer(buffer, dtype='<u2').astype(np.uint32) << 16
                array = bits.view(np.float32)
            else:
                array = np.frombuffer(buffer, dtype=np.dtype(dtype))
            array = array.reshape(shape).copy()  # Writable, and free of the file's buffer.
            return array[()] if code == _EXT_NPSCALAR else array
        if code == _EXT_COMPLEX:
            real, imag = _Reader(payload).read()
            return complex(real, imag)
        raise ValueError(f'unsupported msgpack extension type {code}')


def _unchunk(tree):
    """Reassembles the arrays flax splits into chunks (leaves over 1 GiB), recursively."""
    if not isinstance(tree, dict):
        return tree
    if tree.get(_CHUNKED):
        chunks = tree['chunks']
        flat = np.concatenate([chunks[str(i)] for i in range(len(chunks))])
        return flat.reshape(tree['shape'])
    return {k: _unchunk(v) for k, v in tree.items()}


def msgpack_restore(data):
    """A flax msgpack checkpoint's bytes -> nested dicts of numpy arrays and numbers."""
    reader = _Reader(data)
    tree = reader.read()
    if reader.pos != len(reader.data):
        raise ValueError('trailing bytes after the msgpack object')
    return _unchunk(tree)


def flatten_tree(tree, prefix=''):
    """{'a': {'b': leaf}} -> {'a/b': leaf}: the '/'-joined paths of a nested dict's leaves."""
    flat = {}
    for key, value in tree.items():
        path = f'{prefix}/{key}' if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten_tree(value, path))
        else:
            flat[path] = value
    return flat


def flax_params(flat):
    """{'NerfMLP_0/Dense_i/kernel': array, ...} out of flattened paths (any prefix)."""
    params = {}
    for path, value in flat.items():
        match = _PARAM_PATH.search(path)
        if match is None:
            continue
        if match[1] in params:
            raise ValueError(f'{match[1]} appears twice (second at {path})')
        params[match[1]] = np.asarray(value)
    if not params:
        raise ValueError('no NerfMLP_0/... or PropMLP_0/... parameters found')
    return params


# Where multinerf runs (flax, JAX), this exports any flax checkpoint, orbax ones included, to an
# .npz that the converter reads without them.
EXPORT_SNIPPET = (
    "python -c \"import sys, numpy as np, flax; from flax.training import checkpoints; "
    "t = checkpoints.restore_checkpoint(sys.argv[1], None); "
    "np.savez(sys.argv[2], **{k: np.asarray(v) for k, v in "
    "flax.traverse_util.flatten_dict(t, sep='/').items()})\" CHECKPOINT_DIR state.npz")


def _is_orbax(path):
    """Whether path is a checkpoint folder written by orbax (flax >= 0.7 writes these)."""
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, f)) for f in ('_METADATA', '_CHECKPOINT_METADATA'))


def latest_checkpoint(path):
    """path itself if it is one checkpoint, else the newest `checkpoint_<step>` of the folder."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    if not os.path.isdir(path) or _is_orbax(path):
        return path
    # Only finished checkpoints: flax's temporary files and folders carry a suffix.
    steps = [(int(m[1]), name) for name in os.listdir(path)
             for m in [re.fullmatch(r'checkpoint_(\d+)', name)] if m]
    if not steps:
        raise FileNotFoundError(f'no checkpoint_<step> file or folder in {path}')
    return os.path.join(path, max(steps)[1])


def _restore_orbax(path):
    """An orbax checkpoint folder -> nested dict of numpy arrays (needs orbax, hence JAX)."""
    try:
        import orbax.checkpoint as ocp
    except ImportError as e:
        raise ImportError(
            f'{path} is an orbax checkpoint (newer flax writes these instead of msgpack files); '
            'reading it needs orbax-checkpoint (pip install orbax-checkpoint, which brings JAX), '
            f'or export it to an .npz where multinerf runs:\n  {EXPORT_SNIPPET}') from e
    return ocp.PyTreeCheckpointer().restore(os.path.abspath(path))


def read_checkpoint(path):
    """A multinerf checkpoint (folder, msgpack file, orbax folder or .npz) -> nested dict in the
    TrainState layout.

    An .npz of flattened parameter paths gives {'params': {...}} (no step, no optimizer state);
    one of a flattened TrainState ('step', 'params/params/...', 'opt_state/0/mu/...') gives it all.
    """
    if str(path).endswith('.npz'):
        with np.load(path) as arrays:
            tree = _nest(dict(arrays))
        return tree if 'params' in tree else {'params': tree}
    path = latest_checkpoint(path)
    if _is_orbax(path):
        return _restore_orbax(path)
    if os.path.isdir(path):
        raise ValueError(f'{path} is a folder but neither an orbax nor a msgpack checkpoint')
    with open(path, 'rb') as f:
        return msgpack_restore(f.read())


def _nest(flat):
    """{'a/b': x} -> {'a': {'b': x}}."""
    tree = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split('/')
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def _adam_state(opt_state):
    """(count, {flax path: mu}, {flax path: nu}) of optax.adam's state, or None if absent."""
    # optax.chain's state: a tuple, stored as {'0': ..., '1': ...} (msgpack) or a list (orbax).
    if isinstance(opt_state, dict):
        opt_state = list(opt_state.values())
    if not isinstance(opt_state, (list, tuple)):
        return None
    for part in opt_state:
        if isinstance(part, dict) and {'count', 'mu', 'nu'} <= set(part):
            return (int(np.asarray(part['count'])), flax_params(flatten_tree(part['mu'])),
                    flax_params(flatten_tree(part['nu'])))
    return None


def _torch_layout(flax_name, value, like):
    """A flax leaf as the torch tensor of `like`'s shape (kernels transposed), shape-checked."""
    value = torch.as_tensor(np.array(value, dtype=np.float32))
    if flax_name.endswith('/kernel'):
        value = value.T
    if value.shape != like.shape:
        raise ValueError(f'{flax_name}: shape {tuple(value.shape)} does not fit '
                         f'{tuple(like.shape)}; check the gin config')
    return value


def convert(tree, config):
    """The port's TrainState.state_dict() for a multinerf checkpoint tree (see read_checkpoint).

    Builds the gin-configured model and Adam optimizer, loads the parameters (key- and
    shape-checked) and, when the tree holds them, the Adam moments and the step.
    """
    model, state, _, _, _ = train_utils.setup_model(config, None)
    params = flax_params(flatten_tree(tree['params']))
    models.load_flax_params(model, params)
    state.step = int(np.asarray(tree.get('step', 0)))
    adam = _adam_state(tree.get('opt_state'))
    if adam is not None:
        count, mu, nu = adam
        names = model.flax_names()
        for key, moments in (('mu', mu), ('nu', nu)):
            if set(moments) != set(names.values()):
                raise ValueError(f'optimizer {key} does not hold exactly the model parameters')
        for torch_name, p in model.named_parameters():
            flax_name = names[torch_name]
            state.optimizer.state[p] = {
                'step': torch.tensor(float(count)),
                'exp_avg': _torch_layout(flax_name, mu[flax_name], p),
                'exp_avg_sq': _torch_layout(flax_name, nu[flax_name], p),
            }
    return state.state_dict()


def save(out_dir, state_dict):
    """Writes state_dict as train.py would: out_dir/checkpoint_<step>.pt. Returns the path."""
    payload = {'state': state_dict, 'rng_state': checkpoints.capture_rng_state()}
    return checkpoints.save_checkpoint(out_dir, state_dict['step'], payload, keep=None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('input', help='multinerf checkpoint folder or file, or .npz of parameters')
    parser.add_argument('output', help='folder for checkpoint_<step>.pt')
    parser.add_argument('--gin_configs', action='append', default=[], help='gin config file(s)')
    parser.add_argument('--gin_bindings', action='append', default=[], help='gin binding(s)')
    args = parser.parse_args(argv)
    gin.parse_config_files_and_bindings(args.gin_configs, args.gin_bindings)
    state_dict = convert(read_checkpoint(args.input), configs.Config())
    path = save(args.output, state_dict)
    print(f'wrote step {state_dict["step"]} ({len(state_dict["model"])} tensors) to {path}')


if __name__ == '__main__':
    main()
