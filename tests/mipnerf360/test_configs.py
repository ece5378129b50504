"""Config defaults, the published gin files, gin externals and load_config."""

import dataclasses
import importlib.util
import os

import gin
import pytest
import torch
from absl import flags

from mipnerf360.internal import configs, coord, math

CONFIG_DIR = os.path.join(os.path.dirname(configs.__file__), '..', 'configs')

# Every field of multinerf's Config (internal/configs.py at 5b4d4f6) with its default.
MULTINERF_DEFAULTS = {
    'dataset_loader': 'llff', 'batching': 'all_images', 'batch_size': 16384, 'patch_size': 1,
    'factor': 0, 'load_alphabetical': True, 'forward_facing': False, 'render_path': False,
    'llffhold': 8, 'llff_use_all_images_for_training': False, 'use_tiffs': False,
    'compute_disp_metrics': False, 'compute_normal_metrics': False, 'gc_every': 10000,
    'disable_multiscale_loss': False, 'randomized': True, 'near': 2., 'far': 6.,
    'checkpoint_dir': None, 'render_dir': None, 'data_dir': None, 'vocab_tree_path': None,
    'render_chunk_size': 16384, 'num_showcase_images': 5, 'deterministic_showcase': True,
    'vis_num_rays': 16, 'vis_decimate': 0,
    'max_steps': 250000, 'early_exit_steps': None, 'checkpoint_every': 25000, 'print_every': 100,
    'train_render_every': 5000, 'cast_rays_in_train_step': False, 'data_loss_type': 'charb',
    'charb_padding': 0.001, 'data_loss_mult': 1.0, 'data_coarse_loss_mult': 0.,
    'interlevel_loss_mult': 1.0, 'orientation_loss_mult': 0.0,
    'orientation_coarse_loss_mult': 0.0, 'robustnerf_inlier_quantile': 0.5,
    'enable_robustnerf_loss': False, 'robustnerf_inner_patch_size': 8,
    'robustnerf_smoothed_filter_size': 3, 'robustnerf_smoothed_inlier_quantile': 0.5,
    'robustnerf_inner_patch_inlier_quantile': 0.5, 'orientation_loss_target': 'normals_pred',
    'predicted_normal_loss_mult': 0.0, 'predicted_normal_coarse_loss_mult': 0.0,
    'weight_decay_mults': {}, 'lr_init': 0.002, 'lr_final': 0.00002, 'lr_delay_steps': 512,
    'lr_delay_mult': 0.01, 'adam_beta1': 0.9, 'adam_beta2': 0.999, 'adam_eps': 1e-6,
    'grad_max_norm': 0.001, 'grad_max_val': 0., 'distortion_loss_mult': 0.01,
    'eval_only_once': True, 'eval_save_output': True, 'eval_save_ray_data': False,
    'eval_render_interval': 1, 'eval_dataset_limit': 2**31 - 1, 'eval_quantize_metrics': True,
    'eval_crop_borders': 0,
    'render_video_fps': 60, 'render_video_crf': 18, 'render_path_frames': 120, 'z_variation': 0.,
    'z_phase': 0., 'render_dist_percentile': 0.5, 'render_dist_curve_fn': torch.log,
    'render_path_file': None, 'render_job_id': 0, 'render_num_jobs': 1,
    'render_resolution': None, 'render_focal': None, 'render_camtype': None,
    'render_spherical': False, 'render_save_async': True, 'render_spline_keyframes': None,
    'render_spline_n_interp': 30, 'render_spline_degree': 5, 'render_spline_smoothness': .03,
    'render_spline_interpolate_exposure': False,
    'rawnerf_mode': False, 'exposure_percentile': 97., 'num_border_pixels_to_mask': 0,
    'apply_bayer_mask': False, 'autoexpose_renders': False, 'eval_raw_affine_cc': False,
}

PORT_DEFAULTS = {
    'checkpoint_keep': 100, 'prefetch_batches': 3, 'use_tf32': True, 'use_bf16_autocast': False,
    'use_compile': False, 'compile_elementwise': False, 'nan_check': True, 'grad_accum_steps': 1, 'data_on_device': None,
    'device': None, 'fix_pca_eigh': False, 'eval_wait_timeout': None,
}


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def parse(name, bindings=(), skip_unknown=True):
    """Parses configs/<name> as load_config does and returns the Config."""
    gin.parse_config_files_and_bindings(
        [os.path.join(CONFIG_DIR, name)], list(bindings), skip_unknown=skip_unknown)
    return configs.Config()


def test_fields_and_defaults_match_multinerf():
    config = configs.Config()
    names = [f.name for f in dataclasses.fields(config)]
    assert names == list(MULTINERF_DEFAULTS) + list(PORT_DEFAULTS)
    for name, default in {**MULTINERF_DEFAULTS, **PORT_DEFAULTS}.items():
        assert getattr(config, name) == default, name


def test_mutable_default_is_not_shared():
    a, b = configs.Config(), configs.Config()
    a.weight_decay_mults['NerfMLP_0'] = 1e-5
    assert b.weight_decay_mults == {}


# Config bindings each file makes (the Model / MLP bindings need models.py, checked below).
EXPECTED = {
    '360.gin': dict(dataset_loader='llff', near=0.2, far=1e6, factor=4),
    '360_glo4.gin': dict(dataset_loader='llff', near=0.2, far=1e6, factor=4),
    'blender_256.gin': dict(dataset_loader='blender', batching='single_image', near=2, far=6,
                            eval_render_interval=5, data_loss_type='mse', adam_eps=1e-8,
                            distortion_loss_mult=0.),
    'blender_512.gin': dict(dataset_loader='blender', batching='single_image', near=2, far=6,
                            eval_render_interval=5, data_loss_type='mse', adam_eps=1e-8,
                            distortion_loss_mult=0.),
    'llff_256.gin': dict(dataset_loader='llff', near=0., far=1., factor=4, forward_facing=True,
                         adam_eps=1e-8),
    'llff_512.gin': dict(dataset_loader='llff', near=0., far=1., factor=4, forward_facing=True,
                         adam_eps=1e-8),
    'debug.gin': dict(checkpoint_every=1000, print_every=100, train_render_every=1000,
                      lr_delay_mult=0.1, lr_delay_steps=500, batch_size=2048,
                      render_chunk_size=2048, lr_init=5e-4, lr_final=5e-6, factor=4,
                      early_exit_steps=3000),
    'demo.gin': dict(dataset_loader='llff', near=0.2, far=1e6, factor=4, forward_facing=False,
                     data_dir='data/synthetic/unbounded360', batch_size=512, max_steps=600,
                     lr_init=2e-3, lr_final=2e-5, lr_delay_steps=0, checkpoint_keep=3,
                     checkpoint_every=300, print_every=100, train_render_every=300,
                     render_chunk_size=4096, render_path_frames=60, render_video_fps=30),
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_config_files_set_their_config_values(name):
    config = parse(name)
    for key, value in EXPECTED[name].items():
        assert getattr(config, key) == value, key
    untouched = set(MULTINERF_DEFAULTS) - set(EXPECTED[name]) - {'checkpoint_dir'}
    for key in untouched:
        assert getattr(config, key) == MULTINERF_DEFAULTS[key], key


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_config_files_parse_strictly_with_models(name):
    if importlib.util.find_spec('mipnerf360.internal.models') is None:
        pytest.skip('mipnerf360.internal.models is not written yet')
    importlib.import_module('mipnerf360.internal.models')
    parse(name, skip_unknown=False)
    if name in ('360.gin', '360_glo4.gin', 'demo.gin'):
        assert gin.query_parameter('NerfMLP.warp_fn').configurable.wrapped is coord.contract


def test_bad_config_key_raises_gins_error():
    with pytest.raises(ValueError, match="Config.*bad_key"):
        parse('360.gin', ["Config.bad_key = 1"])


def test_jnp_and_jax_nn_names_resolve_to_torch():
    gin.parse_config("""
        Config.render_dist_curve_fn = @jnp.reciprocal
        a/Config.render_dist_curve_fn = @jax.nn.softplus
        b/Config.render_dist_curve_fn = @math.safe_exp
        c/Config.render_dist_curve_fn = @coord.contract
    """)
    x = torch.tensor([0.5, 2.0])
    fn = configs.Config().render_dist_curve_fn
    # construct_ray_warps looks the inverse up by __name__.
    assert fn.__name__ == 'reciprocal'
    torch.testing.assert_close(fn(x), torch.tensor([2.0, 0.5]))
    expected = {'a': torch.nn.functional.softplus(x), 'b': math.safe_exp(x), 'c': coord.contract(x)}
    for scope, value in expected.items():
        with gin.config_scope(scope):
            torch.testing.assert_close(configs.Config().render_dist_curve_fn(x), value)


@pytest.mark.parametrize('name,variance', [
    ('he_uniform', lambda fan_in, fan_out: 2 / fan_in),
    ('he_normal', lambda fan_in, fan_out: 2 / fan_in),
    ('glorot_uniform', lambda fan_in, fan_out: 2 / (fan_in + fan_out)),
    ('glorot_normal', lambda fan_in, fan_out: 2 / (fan_in + fan_out)),
])
def test_initializers_match_jax_variance_scaling(name, variance):
    gin.parse_config(f'Config.render_dist_curve_fn = @jax.nn.initializers.{name}.init')
    init = configs.Config().render_dist_curve_fn
    torch.manual_seed(0)
    w = init(torch.empty(256, 512))  # [out, in]
    var = variance(512, 256)
    assert abs(w.var().item() / var - 1) < 0.03
    # Uniform: bounded by sqrt(3 var); truncated normal: by 2 pre-rescale standard deviations.
    bound = (3 * var) ** 0.5 if 'uniform' in name else 2 * var ** 0.5 / 0.87962566103423978
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.95 * bound


@pytest.fixture
def set_flags():
    configs.define_common_flags()
    configs.define_common_flags()  # A second call (train and eval in one process) is harmless.

    def set_argv(*argv):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(['prog', *argv])

    yield set_argv
    flags.FLAGS.unparse_flags()


def test_load_config_saves_config_gin(tmp_path, set_flags):
    ckpt = tmp_path / 'run'
    set_flags('--gin_configs=configs/360.gin', f"--gin_bindings=Config.checkpoint_dir='{ckpt}'",
              '--gin_bindings=Config.batch_size=64')
    config = configs.load_config()
    assert (config.near, config.batch_size, config.checkpoint_dir) == (0.2, 64, str(ckpt))
    saved = (ckpt / 'config.gin').read_text()
    assert 'Config.batch_size = 64' in saved and 'Config.near = 0.2' in saved
    # The saved file reproduces the config.
    gin.clear_config()
    gin.parse_config_file(str(ckpt / 'config.gin'), skip_unknown=True)
    assert configs.Config() == config


def test_load_config_without_saving(tmp_path, set_flags):
    set_flags('--gin_configs=configs/debug.gin', f"--gin_bindings=Config.checkpoint_dir='{tmp_path}/x'")
    assert configs.load_config(save_config=False).batch_size == 2048
    assert not (tmp_path / 'x').exists()


def test_load_config_needs_a_checkpoint_dir_to_save(set_flags):
    set_flags('--gin_configs=configs/debug.gin')
    with pytest.raises(ValueError, match='checkpoint_dir'):
        configs.load_config()


def test_load_config_rejects_bad_binding(tmp_path, set_flags):
    set_flags('--gin_configs=configs/360.gin', '--gin_bindings=Config.batch_sise=64')
    with pytest.raises(ValueError, match='batch_sise'):
        configs.load_config(save_config=False)
