"""pixelNeRF as released: checkpoint format, the ResNet34 encoder, data layouts, training, evaluation."""

import contextlib
import io
import json
import pathlib
import re
import types
import warnings

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from pyhocon import ConfigFactory
from tensorboard.backend.event_processing import event_accumulator

from inerf.src import util
from inerf.src.data import DVRDataset, MultiObjectDataset
from inerf.src.model import make_model
from tests.inerf import test_release_synth as srn_synth

CONF_DIR = pathlib.Path(__file__).parents[2] / "inerf" / "conf"
TRAIN_INTERVALS = "train { print_interval = 1, save_interval = 1, vis_interval = 3, eval_interval = 2 }\n"


def _srn_model():
    """PixelNeRFNet of the released SRN config (ResNet34, 5 ResNet blocks of 512), random weights."""
    conf = ConfigFactory.parse_file(str(CONF_DIR / "exp" / "srn.conf"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no ImageNet weights on this machine: fine, a checkpoint follows
        return make_model(conf["model"]).eval()


def test_release_checkpoint_loads_unchanged_and_runs_on_cpu(tmp_path):
    """A state dict saved as the release does (torch.save to checkpoints/<name>/pixel_nerf_latest) loads
    strictly into a fresh net, which then renders the same values on the CPU."""
    torch.manual_seed(0)
    net = _srn_model()
    state = net.state_dict()
    for key in ("encoder.model.conv1.weight", "encoder.model.layer2.0.downsample.0.weight",
                "encoder.model.layer3.5.bn2.running_var", "encoder.model.layer4.2.conv2.weight",
                "mlp_coarse.lin_z.2.weight", "mlp_fine.blocks.4.fc_1.bias", "code._freqs"):
        assert key in state, key
    assert not any(k.startswith("encoder.model.fc") for k in state)  # fc emptied as released
    assert state["mlp_coarse.lin_in.weight"].shape == (512, 42)  # 3 + 3 * 2 * 6 coded xyz + 3 viewdirs
    assert state["mlp_coarse.lin_z.0.weight"].shape == (512, 512)  # 64 + 64 + 128 + 256 latent channels
    (tmp_path / "checkpoints" / "srn_car").mkdir(parents=True)
    torch.save(state, tmp_path / "checkpoints" / "srn_car" / "pixel_nerf_latest")

    torch.manual_seed(1)
    loaded = _srn_model()
    args = types.SimpleNamespace(checkpoints_path=str(tmp_path / "checkpoints"), name="srn_car", resume=True)
    assert loaded.load_weights(args) is loaded
    images = torch.rand(1, 2, 3, 128, 128) * 2 - 1
    poses = torch.stack([util.pose_spherical(a, -20.0, 1.3) for a in (0.0, 90.0)])[None]
    xyz = torch.rand(1, 50, 3) * 0.6 - 0.3
    viewdirs = torch.nn.functional.normalize(torch.randn(1, 50, 3), dim=-1)
    outputs = []
    with torch.no_grad():
        for model in (net, loaded):
            model.encode(images, poses, torch.tensor(131.25))
            outputs.append(model(xyz, coarse=False, viewdirs=viewdirs))
    assert outputs[0].shape == (1, 50, 4)
    assert torch.equal(outputs[0], outputs[1])
    rgb, sigma = outputs[0][..., :3], outputs[0][..., 3]
    assert ((rgb >= 0) & (rgb <= 1)).all() and (sigma >= 0).all() and torch.isfinite(sigma).all()
    assert net.encoder.latent.shape == (2, 512, 64, 64)  # features at half the input resolution


def test_missing_checkpoint_only_warns(tmp_path, tiny_conf):
    """As in the release, an absent pixel_nerf_latest leaves the model as initialised, with a warning."""
    net = make_model(ConfigFactory.parse_string(tiny_conf)["model"])
    args = types.SimpleNamespace(checkpoints_path=str(tmp_path), name="none", resume=True)
    with pytest.warns(UserWarning, match="pixel_nerf_latest does not exist"):
        net.load_weights(args)


def _write_dvr_shapenet(root, n_views=3, size=32):
    """One NMR-style object: <root>/cat0/obj0/{image/*.png, mask/*.png, cameras.npz} and softras_<split>.lst."""
    obj = root / "cat0" / "obj0"
    (obj / "image").mkdir(parents=True)
    (obj / "mask").mkdir()
    cams = {}
    c2ws = []
    for k, eye in enumerate(srn_synth.camera_eyes(n_views, seed=3) * 2.0):
        c2w = srn_synth.look_at_opencv(eye)
        img = srn_synth.render_sphere(c2w, size, focal=size * 1.0)
        imageio.imwrite(obj / "image" / f"{k:04d}.png", img)
        imageio.imwrite(obj / "mask" / f"{k:04d}.png", ((img < 255).any(-1) * 255).astype(np.uint8))
        cams[f"world_mat_{k}"] = np.linalg.inv(c2w)[:3].astype(np.float32)
        cams[f"camera_mat_{k}"] = np.diag([2.0, 2.0, 1.0, 1.0]).astype(np.float32)  # focal 2 on a side of 2
        c2ws.append(c2w)
    np.savez(obj / "cameras.npz", **cams)
    for split in ("train", "val", "test"):
        (root / "cat0" / f"softras_{split}.lst").write_text("obj0\n")
    return np.stack(c2ws)


def test_dvr_shapenet_layout(tmp_path):
    """NMR layout: focal scaled from the [-1, 1] convention to pixels; poses flipped to OpenGL axes."""
    c2ws = _write_dvr_shapenet(tmp_path)
    dset = DVRDataset(str(tmp_path), stage="test")
    data = dset[0]
    assert len(dset) == 1 and data["images"].shape == (3, 3, 32, 32) and data["masks"].shape == (3, 1, 32, 32)
    assert float(data["focal"]) == pytest.approx(32.0)
    world = torch.tensor([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.float32)
    expected = world @ torch.tensor(c2ws, dtype=torch.float32) @ torch.diag(torch.tensor([1.0, -1, -1, 1]))
    torch.testing.assert_close(data["poses"], expected, atol=1e-5, rtol=1e-5)


def test_dvr_dtu_layout(tmp_path):
    """DTU: world_mat = K [R | t] is decomposed; scale_mat normalises the camera centre; c returned."""
    obj = tmp_path / "scan1"
    (obj / "image").mkdir(parents=True)
    K = np.array([[50.0, 0, 20], [0, 52.0, 15], [0, 0, 1]])
    cams, centres = {}, []
    for k, eye in enumerate(srn_synth.camera_eyes(2, seed=5) * 3.0):
        c2w = srn_synth.look_at_opencv(eye)
        w2c = np.linalg.inv(c2w)
        world_mat = np.eye(4)
        world_mat[:3] = K @ w2c[:3]
        cams[f"world_mat_{k}"] = world_mat
        cams[f"scale_mat_{k}"] = np.diag([2.0, 2.0, 2.0, 1.0])
        imageio.imwrite(obj / "image" / f"{k:06d}.png", np.full((30, 40, 3), 128, np.uint8))
        centres.append(eye / 2.0)
    np.savez(obj / "cameras.npz", **cams)
    (tmp_path / "new_test.lst").write_text("scan1\n")
    dset = DVRDataset(str(tmp_path.parent), stage="test", list_prefix="new_", sub_format="dtu", scale_focal=False,
                      z_near=0.1, z_far=5.0)
    data = [dset[i] for i in range(len(dset)) if dset.all_objs[i][1] == str(obj)][0]
    torch.testing.assert_close(data["focal"], torch.tensor([50.0, 52.0]))
    torch.testing.assert_close(data["c"], torch.tensor([20.0, 15.0]))
    torch.testing.assert_close(data["poses"][:, :3, 3], torch.tensor(np.stack(centres), dtype=torch.float32) *
                               torch.tensor([1.0, -1.0, -1.0]), atol=1e-4, rtol=1e-4)


def test_multi_object_layout_and_split(tmp_path):
    """Scenes found recursively; a seeded split saved as split_<seed>.pth and reused; white background."""
    for s in range(5):
        scene = tmp_path / f"scene{s}"
        scene.mkdir()
        rgba = np.zeros((8, 8, 4), np.uint8)
        rgba[2:5, 3:6] = [200, 10, 10, 255]
        imageio.imwrite(scene / "r_0_obj.png", rgba)
        pose = util.pose_spherical(30.0 * s, -30.0, 4.0).tolist()
        (scene / "transforms.json").write_text(json.dumps(
            {"camera_angle_x": 0.7, "frames": [{"file_path": "./r_0", "transform_matrix": pose}]}))
    splits = {st: MultiObjectDataset(str(tmp_path), stage=st) for st in ("train", "val", "test")}
    assert [len(d) for d in splits.values()] == [3, 1, 1]
    assert (tmp_path / "split_1234.pth").exists()
    assert sorted(sum((d.trans_files for d in splits.values()), [])) == sorted(
        str(tmp_path / f"scene{s}" / "transforms.json") for s in range(5))
    data = splits["test"][0]
    assert data["images"].shape == (1, 3, 8, 8)
    assert float(data["images"][0, 0, 0, 0]) == pytest.approx(1.0)  # white where transparent
    assert data["bbox"][0].tolist() == [3, 2, 5, 4]
    assert data["focal"] == pytest.approx(0.5 * 8 / np.tan(0.35))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_conf):
    """Tiny pixelNeRF trained 2 epochs on a 2-object SRN split (resumed after the first)."""
    from inerf.train import train

    root = tmp_path_factory.mktemp("train")
    for split in ("train", "val", "test"):
        for k in range(2):
            srn_synth.write_srn_object(root / "data" / f"cars_{split}" / f"obj{k}", n_views=4, size=32, seed=k)
    conf = root / "tiny.conf"
    conf.write_text(tiny_conf + TRAIN_INTERVALS)
    common = ["-n", "tiny", "-c", str(conf), "-D", str(root / "data" / "cars"), "-B", "1", "-R", "64",
              "--num_workers", "0", "--logs_path", str(root / "logs"), "--checkpoints_path", str(root / "checkpoints"),
              "--visual_path", str(root / "visuals")]
    torch.manual_seed(0)
    first = train.main(common + ["--epochs", "2"])
    steps_first = first.start_iter_id
    with contextlib.redirect_stdout(io.StringIO()) as second_out:
        second = train.main(common + ["--epochs", "1", "--resume"])
    return types.SimpleNamespace(root=root, conf=str(conf), steps_first=steps_first, second=second,
                                 second_out=second_out.getvalue())


def test_nan_loss_stops_before_saving(trained, monkeypatch):
    """A non-finite loss stops training at the next report or save, naming the step; the release's
    checkpoint files stay as they were."""
    from inerf.train import train

    ckpt = trained.root / "checkpoints" / "tiny" / "pixel_nerf_latest"
    before = ckpt.read_bytes()
    real_step = train.PixelNeRFTrainer.train_step
    monkeypatch.setattr(train.PixelNeRFTrainer, "train_step", lambda self, data, global_step: {
        k: v * float("nan") for k, v in real_step(self, data, global_step).items()})
    common = ["-n", "tiny", "-c", trained.conf, "-D", str(trained.root / "data" / "cars"), "-B", "1", "-R", "64",
              "--num_workers", "0", "--logs_path", str(trained.root / "logs"),
              "--checkpoints_path", str(trained.root / "checkpoints"), "--visual_path", str(trained.root / "visuals")]
    with pytest.raises(FloatingPointError, match="at step"):
        train.main(common + ["--epochs", "1", "--resume"])
    assert ckpt.read_bytes() == before


def test_train_writes_release_state_and_resumes(trained):
    """pixel_nerf_latest, _optim, _iter and _renderer are written; --resume continues the step count."""
    ckpt = trained.root / "checkpoints" / "tiny"
    for name in ("pixel_nerf_latest", "pixel_nerf_backup", "_optim", "_iter", "_renderer"):
        assert (ckpt / name).exists(), name
    assert trained.steps_first == 0
    assert trained.second.start_iter_id == 4  # last save after step 3 (epoch 1, batch 1) of the first run
    assert list((trained.root / "visuals" / "tiny").glob("*_vis.png"))
    assert list((trained.root / "logs" / "tiny").glob("events.out.tfevents.*"))


def test_startup_prints_the_predicted_peak_memory(trained):
    """-B 1 x -R 64: one micro-batch of 64 rays, its bytes per ray measured on a probe batch."""
    out = trained.second_out
    assert "predicted peak memory" in out, out
    assert "64 rays per micro-batch (64 rays / grad_accum_steps 1)" in out and "measured on the fly" in out


def test_eval_and_calc_metrics(trained, monkeypatch):
    """eval renders the non-source views (at the data's 32 px: --scale 0.25 of the loader's 128) and writes
    finish.txt; calc_metrics scores them against the dataset images with PSNR, SSIM and LPIPS."""
    from inerf.eval import calc_metrics
    from inerf.eval import eval as pn_eval

    monkeypatch.chdir(trained.root)
    out = trained.root / "eval_out"
    base = ["-n", "tiny", "-c", trained.conf, "-D", str(trained.root / "data" / "cars"), "-F", "srn", "-P", "1",
            "-O", str(out), "--num_workers", "0", "--checkpoints_path", str(trained.root / "checkpoints"),
            "--scale", "0.25"]
    with pytest.raises(ValueError, match="--no_compare_gt"):
        pn_eval.main(base)
    pn_eval.main(base + ["--no_compare_gt"])
    assert sorted(p.name for p in (out / "obj0").glob("*.png")) == ["000000.png", "000002.png", "000003.png"]
    assert imageio.imread(out / "obj0" / "000002.png").shape == (32, 32, 3)
    lines = (out / "finish.txt").read_text().split("\n")
    assert lines[0].split()[0] == "obj0" and lines[1].split()[0] == "obj1"
    assert pn_eval.main(base + ["--no_compare_gt"]) == (0.0, 0.0)  # rerun: every object listed as finished

    if not pathlib.Path(calc_metrics.metrics.default_lpips_weights_path()).exists():
        pytest.skip("LPIPS weights file missing (python -m data_tools.lpips_weights)")
    reduced = calc_metrics.main(["-D", str(trained.root / "data" / "cars_test"), "-O", str(out), "-F", "srn",
                                 "-P", "1", "--lpips_batch_size", "2"])
    pred = imageio.imread(out / "obj1" / "000003.png").astype(np.float32) / 255
    gt = imageio.imread(trained.root / "data" / "cars_test" / "obj1" / "rgb" / "000003.png").astype(np.float32) / 255
    assert 0 < reduced["psnr"] < 60 and 0 < reduced["ssim"] <= 1 and 0 <= reduced["lpips"] < 1
    assert calc_metrics.get_metrics(gt, gt)[1] == pytest.approx(1.0)
    assert calc_metrics.get_metrics(pred, gt)[0] == pytest.approx(-10 * np.log10(np.mean((pred - gt) ** 2)), rel=1e-4)
    assert "lpips" in (out / "all_metrics.txt").read_text()


def test_eval_writes_contact_sheets(trained, monkeypatch):
    """Comparing with the ground truth (the loader's 128 px, view 2), eval writes a contact sheet per
    target view and a summary in each object's folder, also in TensorBoard's events in the output folder
    (obj0 is listed as finished: only obj1, object 1, is rendered)."""
    from inerf.eval import eval as pn_eval

    monkeypatch.chdir(trained.root)
    out = trained.root / "eval_sheets"
    out.mkdir()
    (out / "finish.txt").write_text("obj0 20.0 0.5 1\n")
    (trained.root / "eval_views.txt").write_text("2\n")
    pn_eval.main(["-n", "tiny", "-c", trained.conf, "-D", str(trained.root / "data" / "cars"), "-F", "srn", "-P", "1",
                  "-O", str(out), "--num_workers", "0", "--checkpoints_path", str(trained.root / "checkpoints"),
                  "--eval_view_list", str(trained.root / "eval_views.txt")])
    assert sorted(p.name for p in (out / "obj1" / "sheets").iterdir()) == ["summary.png", "view_000.png"]
    assert imageio.imread(out / "obj1" / "sheets" / "view_000.png").shape == (128, 4 * 128, 3)
    events = event_accumulator.EventAccumulator(str(out), size_guidance={event_accumulator.IMAGES: 0}).Reload()
    assert [e.step for e in events.Images("sheets/summary")] == [1]
    assert [e.step for e in events.Images("sheets/view_000")] == [1]


def test_calc_metrics_reduce_bug_and_fix(tmp_path):
    """With 100+ objects iNeRF-public's reduce sums nothing (the totals stay 0); the flag fixes it."""
    from inerf.eval import calc_metrics

    for k in range(100):
        (tmp_path / f"o{k:03d}").mkdir()
        (tmp_path / f"o{k:03d}" / "metrics.txt").write_text(f"psnr {20 + k % 2}\nssim 0.5\nlpips 0.25")
    faithful = calc_metrics.main(["-O", str(tmp_path), "-R"])
    fixed = calc_metrics.main(["-O", str(tmp_path), "-R", "--fix_reduce_accumulation"])
    assert faithful == {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0}
    assert fixed == pytest.approx({"psnr": 20.5, "ssim": 0.5, "lpips": 0.25})
    saved = json.loads((tmp_path / "all_metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(fixed) and saved["objects"] == 100
    assert saved["protocol"]["reduce"].endswith("--fix_reduce_accumulation)")


def test_calc_metrics_protocol_matches_the_readme_table():
    """The protocol block of `calc_metrics -D data/cars_test -O eval -F srn -P '64'` equals the README's table."""
    from inerf.eval import calc_metrics

    section = (pathlib.Path(__file__).parents[2] / "inerf" / "README.md").read_text().split("- Metrics:")[1].split("\n- ")[0]
    rows = re.findall(r"^  \| `(\w+)` \| `(.+?)` \|", section, re.M)
    args = calc_metrics.make_parser().parse_args(["-D", "data/cars_test", "-O", "eval", "-F", "srn", "-P", "64"])
    block = calc_metrics.protocol(args)
    assert sorted(field for field, _ in rows) == sorted(block)
    for field, value in rows:
        assert block[field] == json.loads(value), field


def test_eval_real_on_shipped_inputs(trained, monkeypatch, tmp_path):
    """eval_real renders an orbit of each shipped input/*_normalize.png (3 of them)."""
    from inerf.eval import eval_real

    monkeypatch.chdir(trained.root)
    vids = eval_real.main(["-n", "tiny", "-c", trained.conf, "--checkpoints_path", str(trained.root / "checkpoints"),
                           "-O", str(tmp_path), "--out_size", "16", "--num_views", "2", "--gif"])
    assert len(vids) == 3
    assert len(imageio.mimread(vids[0])) == 2
    assert sorted(p.name for p in (tmp_path / "police_normalize_frames").iterdir()) == ["0000.png", "0001.png"]


class _Ball(torch.nn.Module):
    """sigma = 50 + 100 (0.5 - |x|): the sigma = 50 level set is the sphere of radius 0.5."""

    use_viewdirs = False

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, coarse=True):
        return torch.cat([x, 50 + 100 * (0.5 - x.norm(dim=-1, keepdim=True))], -1)


def test_marching_cubes_and_obj(tmp_path):
    """The level set is found; vertices are scaled by (c2 - c1) / reso as released (not reso - 1)."""
    from inerf.src.util import recon

    vertices, triangles = recon.marching_cubes(_Ball(), reso=[33, 33, 33])
    index_radii = np.linalg.norm((vertices + 1) * 33 / 2 - 16, axis=1)  # back to grid indices, centre 16
    assert np.allclose(index_radii, 8.0, atol=0.3)  # radius 0.5 = 8 grid steps of 2 / 32
    recon.save_obj(vertices, triangles, tmp_path / "ball.obj")
    lines = (tmp_path / "ball.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in lines) == len(vertices)
    assert sum(line.startswith("f ") for line in lines) == len(triangles)


VARIANT_CONF = """
use_encoder = True
use_xyz = {use_xyz}
use_code = True
code {{ num_freqs = 2, freq_factor = 1.5 }}
use_viewdirs = True
use_code_viewdirs = {code_viewdirs}
use_global_encoder = {use_global}
global_encoder {{ backbone = resnet18, pretrained = False, latent_size = 8 }}
encoder {{ backbone = resnet18, pretrained = False, num_layers = 2, use_first_pool = False }}
mlp_coarse {{ type = {mlp}, n_blocks = 2, d_hidden = 8, combine_layer = {combine_layer}, dims = [8, 8], skip_in = [1],
              dim_excludes_skip = True, combine_type = max }}
mlp_fine {{ type = empty }}
"""


@pytest.mark.parametrize("use_xyz,code_viewdirs,use_global,mlp,d_in", [
    (True, False, False, "resnet", 3 * 5 + 3), (False, True, True, "resnet", 4 * 5), (True, True, False, "mlp", 6 * 5)])
def test_model_config_variants(use_xyz, code_viewdirs, use_global, mlp, d_in):
    """The config switches of the release build and run: z-only input, encoded viewdirs, a global
    image feature, IGR's MLP (its skip input joins before the views are combined); no fine MLP
    (`type = empty`) falls back to the coarse one."""
    conf = ConfigFactory.parse_string(VARIANT_CONF.format(use_xyz=use_xyz, code_viewdirs=code_viewdirs,
                                                          use_global=use_global, mlp=mlp,
                                                          combine_layer=2 if mlp == "mlp" else 1))
    net = make_model(conf).eval()
    assert net.mlp_fine is None
    assert net.d_in == d_in  # (xyz or z [+ viewdirs]) x (1 + 2 num_freqs) [+ raw viewdirs]
    images = torch.rand(2, 2, 3, 32, 32) * 2 - 1  # 2 objects x 2 source views
    poses = torch.stack([util.pose_spherical(a, -20.0, 1.3) for a in (0.0, 60.0, 120.0, 180.0)]).reshape(2, 2, 4, 4)
    with torch.no_grad():
        net.encode(images, poses, torch.tensor([35.0, 40.0]))  # one focal per object
        out = net(torch.rand(2, 7, 3) - 0.5, coarse=False, viewdirs=torch.nn.functional.normalize(torch.randn(2, 7, 3), dim=-1))
    assert out.shape == (2, 7, 4) and torch.isfinite(out).all()
    assert net.encoder.latent.shape == (4, 128, 16, 16)  # no first pool: 32 px -> 16
