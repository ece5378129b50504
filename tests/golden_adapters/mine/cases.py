"""Adapters for mine cases that are not plain calls: seeded draws, constructors, methods, the decoder."""

import re

import numpy as np
import torch

from mine.input_pipelines.llff.nerf_dataset import NeRFDataset
from mine.network.monodepth2.depth_decoder import DepthDecoder
from mine.operations.homography_sampler import HomographySample
from mine.synthesis_task import SynthesisTask
from mine.utils import get_embedder
from tests.golden_adapters import arg_inputs, call_args


def _seeded(case, inputs, function):
    """torch.manual_seed(static seed) right before the call; every argument by keyword."""
    static = dict(case["static"])
    seed = static.pop("torch_manual_seed")
    static.update(arg_inputs(case, inputs))
    torch.manual_seed(seed)
    return function(**static)


def _constructed(case, inputs, function):
    """`Class(**static.constructor).method(*args)` for HomographySample.sample and SSIM.forward."""
    owner = HomographySample if case["function"].endswith("HomographySample.sample") else function
    obj = owner(**case["static"]["constructor"])
    args = call_args(case, inputs)
    return obj.sample(*args) if owner is HomographySample else obj(*args)


def _render_tgt(case, inputs, function):
    """render_tgt_rgb_depth with a HomographySample(H, W) as its first argument."""
    static = dict(case["static"])
    sampler = static.pop("H_sampler")
    args = call_args(case, inputs)
    return function(HomographySample(sampler["H_tgt"], sampler["W_tgt"]), *args, **static)


def _scale_factor(case, inputs, function):
    """SynthesisTask.compute_scale_factor on an object holding only the config."""
    task = SynthesisTask.__new__(SynthesisTask)
    task.config = case["static"]["config"]
    return function(task, inputs["disparity_syn_pt3dsrc"], inputs["pt3d_disp_src"])


def _embedder(case, inputs, function):
    embed, out_dim = function(case["static"]["multires"])
    return embed(inputs["x"]), out_dim


def _info_transform(case, inputs, function):
    """NeRFDataset._info_transform on the info dict rebuilt from the stored arrays (float64 as the original)."""
    a = {k: v.numpy() for k, v in inputs.items()}
    info = {
        "img": None,
        "qvec": a["qvec"].astype(np.float64),
        "tvec": a["tvec"].astype(np.float64),
        "camera_params": a["camera_params"].astype(np.float64),
        "xyzs": list(zip(a["xyz_ids"], a["xys"].astype(np.float64), a["xyzs_world"].astype(np.float64))),
    }
    out = function(NeRFDataset.__new__(NeRFDataset), info, tuple(case["static"]["downsample_ratio"]))
    return [out[name] for name in case["outputs"]]


def _decoder_weight(key, k, shape):
    """The case's deterministic value of the k-th sorted float state-dict entry."""
    n = int(np.prod(shape))
    base = np.sin(0.7 * np.arange(n, dtype=np.float64) + 0.3 * (k + 1))
    if len(shape) >= 2:
        value = base * np.sqrt(3 / (n / shape[0]))
    elif key.endswith("running_var"):
        value = 1 + 0.25 * (1 + base)
    elif key.endswith("running_mean"):
        value = 0.1 * base
    elif key.endswith("weight"):
        value = 1 + 0.1 * base
    else:
        value = 0.1 * base
    return torch.from_numpy(value.astype(np.float32).reshape(shape))


def _embedder_of(ctor):
    """(embed, out_dim) named by the case: constructor.embedder is the string "get_embedder(M)[0]"."""
    match = re.fullmatch(r"get_embedder\((\d+)\)\[0\]", ctor["embedder"])
    assert match, f"unknown embedder {ctor['embedder']!r}"
    embed, out_dim = get_embedder(int(match.group(1)))
    assert out_dim == ctor["embedder_out_dim"], (out_dim, ctor["embedder_out_dim"])
    return embed, out_dim


def fill_module(module, expected_float_keys=None):
    """Loads the cases' deterministic weights into every float state-dict entry of module (see _decoder_weight)."""
    state = module.state_dict()
    if expected_float_keys is not None:
        assert sorted(k for k, v in state.items() if v.is_floating_point()) == expected_float_keys
    # k counts every sorted key, num_batches_tracked included (they are skipped, not re-numbered).
    values = {key: _decoder_weight(key, k, state[key].shape) for k, key in enumerate(sorted(state))
              if state[key].is_floating_point()}
    module.load_state_dict({**state, **values})


def _decoder(case, inputs, function):
    """DepthDecoder built from the case's constructor with its deterministic weights, eval mode.

    Outputs disp_<s> are outputs[("disp", s)] for the case's output names.
    """
    ctor = dict(case["static"]["constructor"])
    ctor["embedder"], ctor["embedder_out_dim"] = _embedder_of(ctor)
    decoder = DepthDecoder(**ctor)
    fill_module(decoder, case["static"]["state_dict_float_keys_sorted"])
    decoder.eval()
    feats = [inputs[f"feat{i}"] for i in range(5)]
    outputs = function(decoder, feats, inputs["disparity"])
    return {name: outputs[("disp", int(name.split("_")[1]))] for name in case["outputs"]}


ADAPTERS = {
    "mine.operations.rendering_utils:uniformly_sample_disparity_from_linspace_bins": _seeded,
    "mine.operations.rendering_utils:uniformly_sample_disparity_from_bins": _seeded,
    "mine.operations.rendering_utils:sample_pdf": _seeded,
    "mine.synthesis_task:_get_disparity_list": _seeded,
    "mine.operations.homography_sampler:HomographySample.sample": _constructed,
    "mine.network.ssim:SSIM": _constructed,
    "mine.operations.mpi_rendering:render_tgt_rgb_depth": _render_tgt,
    "mine.synthesis_task:SynthesisTask.compute_scale_factor": _scale_factor,
    "mine.utils:get_embedder": _embedder,
    "mine.input_pipelines.llff.nerf_dataset:NeRFDataset._info_transform": _info_transform,
    "mine.network.monodepth2.depth_decoder:DepthDecoder.forward": _decoder,
}
