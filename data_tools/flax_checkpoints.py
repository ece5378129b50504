"""Reading flax checkpoints without JAX or flax: the msgpack files flax.training.checkpoints wrote
when multinerf and google/mipnerf were released, orbax folders (newer flax; these need orbax), and
.npz exports, as nested dicts of numpy arrays; and the flat '/'-joined paths of their leaves."""

import os
import re

import msgpack
import numpy as np

# flax.serialization's msgpack extension types, and the marker of an array it split into chunks.
_EXT_NDARRAY, _EXT_COMPLEX, _EXT_NPSCALAR = 1, 2, 3
_CHUNKED = '__msgpack_chunked_array__'

# Where flax and JAX run, this exports any flax checkpoint (orbax ones included) to an .npz that
# read_checkpoint reads without them.
EXPORT_SNIPPET = (
    "python -c \"import sys, numpy as np, flax; from flax.training import checkpoints; "
    "t = checkpoints.restore_checkpoint(sys.argv[1], None); "
    "np.savez(sys.argv[2], **{k: np.asarray(v) for k, v in "
    "flax.traverse_util.flatten_dict(t, sep='/').items()})\" CHECKPOINT_DIR state.npz")


def _decode_ext(code, payload):
    """One of flax's extension objects: a numpy array or scalar ([shape, dtype name, bytes]) or a
    complex number ([real, imag])."""
    if code in (_EXT_NDARRAY, _EXT_NPSCALAR):
        shape, dtype, buffer = msgpack.unpackb(payload, raw=False)
        if dtype == 'bfloat16':  # numpy has no bfloat16: widen the upper halves of float32s.
            array = (np.frombuffer(buffer, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(buffer, dtype=np.dtype(dtype))
        array = array.reshape(shape).copy()  # Writable, and free of the file's buffer.
        return array[()] if code == _EXT_NPSCALAR else array
    if code == _EXT_COMPLEX:
        return complex(*msgpack.unpackb(payload))
    raise ValueError(f'unsupported msgpack extension type {code}')


def _unchunk(tree):
    """Reassembles the arrays flax splits into chunks (leaves over 1 GiB), recursively."""
    if not isinstance(tree, dict):
        return tree
    if tree.get(_CHUNKED):
        chunks = tree['chunks']
        return np.concatenate([chunks[str(i)] for i in range(len(chunks))]).reshape(tree['shape'])
    return {k: _unchunk(v) for k, v in tree.items()}


def msgpack_restore(data):
    """The bytes of a flax msgpack checkpoint -> nested dicts of numpy arrays and numbers."""
    return _unchunk(msgpack.unpackb(data, ext_hook=_decode_ext, raw=False, strict_map_key=False))


def _encode_ext(obj):
    """numpy arrays and scalars as flax's extension objects (msgpack's `default`)."""
    if isinstance(obj, (np.ndarray, np.generic)):
        code = _EXT_NDARRAY if isinstance(obj, np.ndarray) else _EXT_NPSCALAR
        array = np.asarray(obj)
        return msgpack.ExtType(code, msgpack.packb([array.shape, array.dtype.name, array.tobytes()]))
    if isinstance(obj, complex):
        return msgpack.ExtType(_EXT_COMPLEX, msgpack.packb([obj.real, obj.imag]))
    raise TypeError(f'cannot serialise {type(obj).__name__}')


def msgpack_serialize(tree):
    """Nested dicts of numpy arrays and numbers -> bytes as flax.serialization.msgpack_serialize
    writes them (unchunked)."""
    return msgpack.packb(tree, default=_encode_ext, use_bin_type=True)


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


def nest(flat):
    """{'a/b': x} -> {'a': {'b': x}}: flatten_tree undone."""
    tree = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split('/')
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def flax_params(flat, param_path, what):
    """{name: array} of the flattened leaves whose path ends in a parameter name.

    param_path: a compiled regex whose group 1 is the parameter's name, e.g. 'MLP_0/Dense_3/kernel',
      searched in each path (anchor it with `$` to leave out the Adam moments stored under it).
    what: the parameters the regex describes, for the error when none is found.
    """
    params = {}
    for path, value in flat.items():
        match = param_path.search(path)
        if match is None:
            continue
        if match[1] in params:
            raise ValueError(f'{match[1]} appears twice in the checkpoint (second at {path})')
        params[match[1]] = np.asarray(value)
    if not params:
        raise ValueError(f'no {what} parameters in the checkpoint')
    return params


def is_orbax(path):
    """Whether path is a checkpoint folder written by orbax (flax >= 0.7 writes these)."""
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, f)) for f in ('_METADATA', '_CHECKPOINT_METADATA'))


def latest_checkpoint(path):
    """path itself if it is one checkpoint, else the newest `checkpoint_<step>` of the folder."""
    if not os.path.exists(path):
        raise FileNotFoundError(f'{path}: no such checkpoint file or folder')
    if not os.path.isdir(path) or is_orbax(path):
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
            f'or export it to an .npz where flax runs:\n  {EXPORT_SNIPPET}') from e
    return ocp.PyTreeCheckpointer().restore(os.path.abspath(path))


def read_checkpoint(path):
    """A flax checkpoint (a folder of `checkpoint_<step>`s, one msgpack file, an orbax folder, or an
    .npz of flattened leaves) -> nested dict of numpy arrays, as flax saved the tree."""
    if str(path).endswith('.npz'):
        with np.load(path) as arrays:
            return nest(dict(arrays))
    path = latest_checkpoint(path)
    if is_orbax(path):
        return _restore_orbax(path)
    if os.path.isdir(path):
        raise ValueError(f'{path} is a folder but neither an orbax nor a msgpack checkpoint')
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return msgpack_restore(data)
    except (ValueError, msgpack.UnpackException) as e:
        raise ValueError(f'{path} is not a flax msgpack checkpoint ({e}); convert an .npz export '
                         f'instead:\n  {EXPORT_SNIPPET}') from e
