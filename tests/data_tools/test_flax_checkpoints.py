"""data_tools.flax_checkpoints: flax's msgpack checkpoints read and written without JAX or flax."""

import numpy as np
import pytest

from data_tools import flax_checkpoints

# flax.serialization.msgpack_serialize({'step': 7, 'params': {'params': {'NerfMLP_0': {'Dense_0':
#   {'kernel': arange(6, float32).reshape(2, 3) / 4, 'bias': [-1.5, 0, 2] float32}}}},
#   'opt_state': {'0': {'count': np.int32(7)}}}), written by flax 0.12.8.
FLAX_BYTES = bytes.fromhex(
    '83a96f70745f737461746581a13081a5636f756e74c70e039390a5696e743332c40407000000a6706172616d73'
    '81a6706172616d7381a94e6572664d4c505f3081a744656e73655f3082a462696173c71901939103a7666c6f61'
    '743332c40c0000c0bf0000000000000040a66b65726e656cc7260193920203a7666c6f61743332c41800000000'
    '0000803e0000003f0000403f0000803f0000a03fa47374657007')



def test_reads_what_flax_writes():
    tree = flax_checkpoints.msgpack_restore(FLAX_BYTES)
    assert tree['step'] == 7
    assert int(tree['opt_state']['0']['count']) == 7
    dense = tree['params']['params']['NerfMLP_0']['Dense_0']
    np.testing.assert_array_equal(dense['kernel'], np.arange(6, dtype=np.float32).reshape(2, 3) / 4)
    np.testing.assert_array_equal(dense['bias'], np.array([-1.5, 0, 2], np.float32))
    assert dense['kernel'].dtype == np.float32
    # msgpack_serialize writes it back in flax's format.
    again = flax_checkpoints.msgpack_restore(flax_checkpoints.msgpack_serialize(tree))
    np.testing.assert_array_equal(again['params']['params']['NerfMLP_0']['Dense_0']['kernel'],
                                  dense['kernel'])


def test_unchunks_large_leaves():
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    chunked = {'__msgpack_chunked_array__': True, 'shape': [2, 5],
               'chunks': {'0': x.ravel()[:4], '1': x.ravel()[4:]}}
    tree = flax_checkpoints.msgpack_restore(flax_checkpoints.msgpack_serialize({'a': {'b': chunked}}))
    np.testing.assert_array_equal(tree['a']['b'], x)


def test_paths_flatten_and_nest_back():
    tree = {'params': {'MLP_0': {'Dense_0': {'kernel': np.ones((2, 3)), 'bias': np.zeros(3)}}}, 'step': 4}
    flat = flax_checkpoints.flatten_tree(tree)
    assert set(flat) == {'params/MLP_0/Dense_0/kernel', 'params/MLP_0/Dense_0/bias', 'step'}
    assert flax_checkpoints.nest(flat)['params']['MLP_0']['Dense_0']['kernel'].shape == (2, 3)


def test_the_newest_finished_checkpoint_of_a_folder_is_read(tmp_path):
    for step in (3, 12):
        (tmp_path / f'checkpoint_{step}').write_bytes(flax_checkpoints.msgpack_serialize({'step': step}))
    (tmp_path / 'checkpoint_20.tmp').write_bytes(b'half written')
    assert flax_checkpoints.read_checkpoint(str(tmp_path))['step'] == 12
    (tmp_path / 'checkpoint_30').write_bytes(b'\xc1')
    with pytest.raises(ValueError, match='checkpoint_30 is not a flax msgpack checkpoint'):
        flax_checkpoints.read_checkpoint(str(tmp_path))
