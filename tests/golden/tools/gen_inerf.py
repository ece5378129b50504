"""Writes inerf golden cases (issue 17, points 2 and 3) by running the ORIGINAL code on seeded inputs.

It imports the two originals from the paths given on the command line and never from this project:
  --original       an export of yenchenlin/iNeRF-public (the pixelNeRF tree under pixel-nerf/),
  --original-nerf  an export of salykovaa/inerf (the paper's NeRF-based iNeRF: inerf_helpers.py,
                   nerf_helpers.py).
Run it with a Python that has torch (2.13, CPU), numpy, pyhocon and dotmap, and torchvision wheels on
disk (only torchvision/models/resnet.py is loaded: the package's compiled ops need not match torch):

  python tests/golden/tools/gen_inerf.py --original /tmp/orig_inerf_yenchenlin \
      --original-nerf /tmp/orig_inerf_salykovaa --out tests/golden/inerf

cv2 is stubbed (the pixelNeRF util module only names a colour map constant at import time). For the
training step, train/train.py is executed with stubs for its command line, dataset and Trainer base
class (data loaders, tensorboard), then PixelNeRFTrainer.calc_losses runs on the case's batch.
New cases are named *_g17_*; re-running replaces the manifest entries of the same case names.
"""

import argparse
import importlib.util
import json
import math
import os
import pathlib
import runpy
import sys
import types

import numpy as np
import torch

PIXELNERF = "yenchenlin/iNeRF-public@ab99c08cdbade1e92c152b6619c3066c01a4401b"
NERF = "salykovaa/inerf@2c8e902bc6f148e178275002da35153a60cf6247"


# ----------------------------------------------------------------------------------------- imports
def _stub_modules():
    """cv2 (a constant only) and torchvision (its resnet.py only, without the compiled ops)."""
    cv2 = types.ModuleType("cv2")
    cv2.COLORMAP_HOT = 11
    sys.modules.setdefault("cv2", cv2)
    spec = importlib.util.find_spec("torchvision")
    root = os.path.dirname(spec.origin)
    for name, path in (("torchvision", root), ("torchvision.models", os.path.join(root, "models"))):
        module = types.ModuleType(name)
        module.__path__ = [path]
        sys.modules[name] = module
    import torchvision.models.resnet as resnet  # noqa: E402
    for name in ("resnet18", "resnet34", "resnet50"):
        setattr(sys.modules["torchvision.models"], name, getattr(resnet, name))
    transforms = types.ModuleType("torchvision.transforms")
    sys.modules["torchvision.transforms"] = transforms
    sys.modules["torchvision"].transforms = transforms
    sys.modules["torchvision"].models = sys.modules["torchvision.models"]


def import_originals(original, original_nerf):
    """Returns a namespace of the original modules."""
    _stub_modules()
    src = os.path.join(original, "pixel-nerf", "src")
    sys.path.insert(0, src)
    sys.path.insert(0, original_nerf)
    import util  # noqa: F401
    import model
    import model.encoder
    import model.models
    import model.resnetfc
    import render.nerf
    import inerf_helpers
    import nerf_helpers
    torch.autograd.set_detect_anomaly(False)  # nerf_helpers turns it on at import
    return types.SimpleNamespace(util=sys.modules["util"], model=model, encoder=model.encoder,
                                 models=model.models, resnetfc=model.resnetfc, nerf=render.nerf,
                                 inerf_helpers=inerf_helpers, nerf_helpers=nerf_helpers,
                                 pixelnerf_root=os.path.join(original, "pixel-nerf"))


# ----------------------------------------------------------------------------------------- writing
class Writer:
    """Collects cases; save() writes the npz files and merges the manifest entries."""

    def __init__(self, out):
        self.out = pathlib.Path(out)
        self.entries = []

    def add(self, case, function, reference, args, static, inputs, outputs, rtol, atol, notes):
        arrays = {}
        for name, value in inputs.items():
            arrays[f"in_{name}"] = _np(value)
        for name, value in outputs.items():
            arrays[f"out_{name}"] = _np(value)
        np.savez(self.out / case, **arrays)
        size = (self.out / case).stat().st_size
        assert size < 1_600_000, f"{case}: {size} bytes"
        self.entries.append(dict(case=case, function=function, reference=reference, args=list(args),
                                 static=static, outputs=list(outputs), rtol=rtol, atol=atol, notes=notes))

    def save(self):
        path = self.out / "manifest.json"
        manifest = json.loads(path.read_text()) if path.exists() else []
        names = {e["case"] for e in self.entries}
        manifest = [e for e in manifest if e["case"] not in names] + self.entries
        path.write_text(json.dumps(manifest, indent=1) + "\n")
        print(f"wrote {len(self.entries)} cases to {self.out}")


def _np(value):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    value = np.asarray(value)
    if value.dtype == np.float64:
        value = value.astype(np.float32)
    return value


def _atol(outputs, scale=2e-6, floor=1e-6):
    """Absolute tolerance relative to the largest output magnitude (float32 round-off)."""
    biggest = max(float(np.abs(_np(v)).max()) if _np(v).size else 0.0 for v in outputs.values())
    return max(floor, scale * biggest)


# --------------------------------------------------------------------------------- camera_transf
def gen_camera_transf(o, w):
    ref = f"{NERF}:inerf_helpers.py:camera_transf.forward"
    g = torch.Generator().manual_seed(1701)

    def pose():
        a = torch.randn(3, generator=g)
        angle = torch.linalg.norm(a)
        k = a / angle
        K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        R = torch.eye(3) + torch.sin(angle) * K + (1 - torch.cos(angle)) * K @ K
        x = torch.eye(4)
        x[:3, :3] = R
        x[:3, 3] = torch.randn(3, generator=g) * 2
        return x

    unit = lambda v: v / torch.linalg.norm(v)  # noqa: E731
    cases = {
        "near_identity": (torch.randn(3, generator=g) * 1e-6, torch.randn(3, generator=g) * 1e-6,
                          torch.tensor(3e-7)),
        "near_plus_pi": (unit(torch.randn(3, generator=g)), torch.randn(3, generator=g),
                         torch.tensor(math.pi - 1e-3)),
        "near_minus_pi": (unit(torch.randn(3, generator=g)), torch.randn(3, generator=g),
                          torch.tensor(-math.pi + 2e-3)),
        "zero_theta": (unit(torch.randn(3, generator=g)), torch.randn(3, generator=g), torch.tensor(0.0)),
        "zero_axis": (torch.zeros(3), torch.randn(3, generator=g), torch.tensor(0.4)),
        "nonunit_axis": (torch.randn(3, generator=g) * 2.5, torch.randn(3, generator=g), torch.tensor(0.7)),
        "large_translation": (unit(torch.randn(3, generator=g)), torch.randn(3, generator=g) * 150.0,
                              torch.tensor(1.3)),
    }
    for name, (wv, v, theta) in cases.items():
        x, loss_weight = pose(), torch.randn(4, 4, generator=g)
        model = o.inerf_helpers.camera_transf()
        with torch.no_grad():
            model.w.copy_(wv)
            model.v.copy_(v)
            model.theta.copy_(theta)
        out = model(x)
        (out * loss_weight).sum().backward()
        outputs = {"0": out, "grad_w": model.w.grad, "grad_v": model.v.grad, "grad_theta": model.theta.grad}
        w.add(f"camera_transf_g17_{name}.npz", "inerf.inerf_helpers:camera_transf", ref,
              ["w", "v", "theta", "x"], {},
              {"w": wv, "v": v, "theta": theta, "x": x, "loss_weight": loss_weight}, outputs,
              1e-5, _atol(outputs),
              "nn.Module with parameters w (3,), v (3,), theta (); set them from in_w/in_v/in_theta, call "
              "forward(in_x) -> out_0 (4x4). Then backprop loss=(out_0*in_loss_weight).sum() and compare "
              "parameter grads with out_grad_w/out_grad_v/out_grad_theta. w is NOT normalised by the "
              f"original. Edge pose: {name}. atol = 2e-6 * the largest output magnitude.")


# ------------------------------------------------------------------------------------------- NeRF
def gen_nerf_mlp(o, w):
    ref = f"{NERF}:nerf_helpers.py:NeRF.forward"
    variants = [
        dict(D=4, W=24, input_ch=39, input_ch_views=15, output_ch=4, skips=[2], use_viewdirs=True),
        dict(D=6, W=20, input_ch=3, input_ch_views=3, output_ch=5, skips=[1, 3], use_viewdirs=False),
        dict(D=2, W=10, input_ch=63, input_ch_views=27, output_ch=4, skips=[], use_viewdirs=True),
        dict(D=5, W=12, input_ch=21, input_ch_views=0, output_ch=4, skips=[2], use_viewdirs=False),
    ]
    for i, static in enumerate(variants):
        torch.manual_seed(200 + i)
        net = o.nerf_helpers.NeRF(**static)
        x = torch.randn(11, static["input_ch"] + static["input_ch_views"])
        with torch.no_grad():
            out = net(x)
        inputs = {"x": x, **{f"sd_{k}": v for k, v in net.state_dict().items()}}
        w.add(f"nerf_mlp_g17_{i}.npz", "inerf.nerf_helpers:NeRF", ref, ["x"], static, inputs, {"0": out},
              1e-4, 1e-5, "construct NeRF(**static), load_state_dict from every in_sd_<key> array, call "
              "forward(in_x)")


# -------------------------------------------------------------------------------------- ResnetFC
def gen_resnetfc(o, w):
    ref = f"{PIXELNERF}:pixel-nerf/src/model/resnetfc.py:ResnetFC.forward"
    variants = [
        dict(d_in=9, d_out=4, n_blocks=4, d_latent=5, d_hidden=12, beta=0.0, combine_layer=2,
             combine_type="average", use_spade=False, combine_inner_dims=[3, 4]),
        dict(d_in=6, d_out=5, n_blocks=3, d_latent=7, d_hidden=10, beta=10.0, combine_layer=1,
             combine_type="max", use_spade=False, combine_inner_dims=[2, 3]),
        dict(d_in=4, d_out=4, n_blocks=3, d_latent=6, d_hidden=8, beta=0.0, combine_layer=2,
             combine_type="average", use_spade=True, combine_inner_dims=[2, 5]),
        dict(d_in=11, d_out=3, n_blocks=1, d_latent=0, d_hidden=20, beta=100.0, combine_layer=1000,
             combine_type="average", use_spade=False, combine_inner_dims=[1, 6]),
        dict(d_in=5, d_out=4, n_blocks=5, d_latent=3, d_hidden=16, beta=0.0, combine_layer=0,
             combine_type="max", use_spade=False, combine_inner_dims=[4, 2]),
    ]
    for i, static in enumerate(variants):
        torch.manual_seed(300 + i)
        kwargs = {k: v for k, v in static.items() if k != "combine_inner_dims"}
        d_in = kwargs.pop("d_in")
        net = o.resnetfc.ResnetFC(d_in, **kwargs)
        with torch.no_grad():  # the release zero-initialises fc_1: give every weight a value
            for p in net.parameters():
                p.copy_(torch.randn_like(p) * 0.4)
        n_obj = 2
        rows = n_obj * static["combine_inner_dims"][0] * static["combine_inner_dims"][1]
        zx = torch.randn(rows, static["d_latent"] + d_in)
        with torch.no_grad():
            out = net(zx, combine_inner_dims=tuple(static["combine_inner_dims"]))
        inputs = {"zx": zx, "combine_inner_dims": torch.tensor(static["combine_inner_dims"]),
                  **{f"sd_{k}": v for k, v in net.state_dict().items()}}
        w.add(f"resnetfc_g17_{i}.npz", "inerf.src.model.resnetfc:ResnetFC", ref, ["zx", "combine_inner_dims"],
              static, inputs, {"0": out}, 1e-4, 1e-5,
              "construct ResnetFC(d_in, d_out=, n_blocks=, d_latent=, d_hidden=, beta=, combine_layer=, "
              "combine_type=, use_spade=) from static, load_state_dict from in_sd_<key> arrays (all weights "
              "random, fc_1 included), call forward(in_zx, combine_inner_dims=tuple(static)). Rows of zx "
              "are ordered (object, view, point); views are combined at combine_layer.")


# ------------------------------------------------------------------------------------- composite
class StubModel(torch.nn.Module):
    """Returns stored raw outputs in query order, ignoring the points; records the points."""

    def __init__(self, raw, use_viewdirs, sb):
        super().__init__()
        self.raw = raw.reshape(sb, -1, 4) if sb > 0 else raw.reshape(-1, 4)
        self.use_viewdirs = use_viewdirs
        self.offset = 0
        self.points = []

    def forward(self, points, coarse=True, viewdirs=None):
        self.points.append(points)
        n = points.shape[-2]
        out = self.raw[..., self.offset:self.offset + n, :]
        self.offset += n
        return out


def gen_composite(o, w):
    ref = f"{PIXELNERF}:pixel-nerf/src/render/nerf.py:NeRFRenderer.composite"
    variants = [  # (B, K, sb, white, coarse, eval_batch_size, use_viewdirs)
        (6, 12, 3, True, False, 10, True),
        (6, 12, 3, False, False, 100000, False),
        (8, 5, 2, False, True, 7, True),
        (5, 9, 0, True, False, 4, True),
        (4, 24, 4, True, True, 13, False),
        (3, 6, 1, False, False, 5, True),
    ]
    for i, (B, K, sb, white, coarse, ebs, viewdirs) in enumerate(variants):
        g = torch.Generator().manual_seed(400 + i)
        near = 0.5 + torch.rand(B, 1, generator=g)
        far = near + 1.0 + torch.rand(B, 1, generator=g)
        dirs = torch.randn(B, 3, generator=g)
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        rays = torch.cat([torch.randn(B, 3, generator=g), dirs, near, far], -1)
        z_samp = torch.sort(near + (far - near) * torch.rand(B, K, generator=g), -1)[0]
        raw = torch.cat([torch.rand(B, K, 3, generator=g), torch.relu(torch.randn(B, K, 1, generator=g)) * 3], -1)
        renderer = o.nerf.NeRFRenderer(n_coarse=K, white_bkgd=white, eval_batch_size=ebs).eval()
        model = StubModel(raw, viewdirs, sb)
        with torch.no_grad():
            weights, rgb, depth = renderer.composite(model, rays, z_samp, coarse=coarse, sb=sb)
        points = torch.cat(model.points, dim=-2).reshape(B, K, 3)
        static = {"coarse": coarse, "sb": sb, "white_bkgd": white, "eval_batch_size": ebs,
                  "model_use_viewdirs": viewdirs}
        w.add(f"composite_g17_{i}.npz", "inerf.src.render.nerf:NeRFRenderer.composite", ref,
              ["model", "rays", "z_samp", "coarse", "sb"], static,
              {"rays": rays, "z_samp": z_samp, "raw": raw},
              {"weights": weights, "rgb": rgb, "depth": depth, "points": points}, 1e-5, 1e-5,
              "renderer = NeRFRenderer(n_coarse=K, white_bkgd=, eval_batch_size=).eval(). model is a stub "
              "module with attribute use_viewdirs (model_use_viewdirs) that ignores the queried points and "
              "returns in_raw (B,K,4) in the order queried (chunks of eval_batch_size points; with sb>0 the "
              "stub gets (sb, chunk, 3) and returns (sb, chunk, 4) slices of in_raw reshaped to (sb,-1,4)). "
              "out_points are the query points reshaped to (B,K,3). z_samp of K = n_coarse + n_fine sorted "
              "samples when coarse is false.")


# -------------------------------------------------------------------------------- encoder.index
def gen_encoder_index(o, w):
    ref = f"{PIXELNERF}:pixel-nerf/src/model/encoder.py:SpatialEncoder.index"
    variants = [  # (interp, padding, B, L, h, w, N, image (W, H), uv batch 1)
        ("nearest", "border", 2, 3, 5, 7, 10, (14, 10), False),
        ("nearest", "zeros", 1, 6, 4, 4, 8, (8, 8), False),
        ("nearest", "reflection", 3, 2, 6, 3, 7, (6, 12), True),
        ("bilinear", "border", 2, 5, 3, 8, 9, (16, 6), True),
        ("bilinear", "reflection", 2, 4, 7, 5, 12, (10, 14), False),
        ("bilinear", "zeros", 1, 8, 2, 9, 6, (18, 4), False),
    ]
    encoder = o.encoder.SpatialEncoder(backbone="custom", pretrained=False)
    for i, (interp, pad, B, L, h, wd, N, image_size, uv_one) in enumerate(variants):
        g = torch.Generator().manual_seed(500 + i)
        latent = torch.randn(B, L, h, wd, generator=g)
        scaling = torch.tensor([wd, h], dtype=torch.float32)
        scaling = scaling / (scaling - 1) * 2.0
        image_size_t = torch.tensor(image_size, dtype=torch.float32)
        # pixels from a margin outside the image to beyond it, so every padding mode matters
        uv = (torch.rand(1 if uv_one else B, N, 2, generator=g) * 1.4 - 0.2) * image_size_t
        encoder.latent, encoder.latent_scaling = latent, scaling
        encoder.index_interp, encoder.index_padding = interp, pad
        with torch.no_grad():
            out = encoder.index(uv, None, image_size_t)
        w.add(f"encoder_index_g17_{i}.npz", "inerf.src.model.encoder:SpatialEncoder.index", ref,
              ["uv", "cam_z", "image_size"], {"index_interp": interp, "index_padding": pad},
              {"uv": uv, "image_size": image_size_t, "latent": latent, "latent_scaling": scaling},
              {"0": out}, 1e-5, 1e-5,
              "set encoder.latent=in_latent (B,L,h,w), encoder.latent_scaling=in_latent_scaling (= [w,h]/"
              "([w,h]-1)*2 as set by forward), index_interp/index_padding from static; call index(in_uv, "
              "None, in_image_size) with image_size=(W,H) of the source image in pixels. uv may have batch 1 "
              "(expanded to B). Some uv lie outside the image. Original built with backbone='custom'.")


# -------------------------------------------------------------------------------- PixelNeRFNet
def _net_conf(use_encoder, **overrides):
    conf = {
        "use_encoder": use_encoder, "use_global_encoder": False, "use_xyz": True, "canon_xyz": False,
        "use_code": True, "code": {"num_freqs": 2, "freq_factor": 1.5, "include_input": True},
        "use_viewdirs": True, "use_code_viewdirs": False, "normalize_z": True,
        "mlp_coarse": {"type": "resnet", "n_blocks": 3, "d_hidden": 16, "combine_layer": 2,
                       "combine_type": "average"},
        "mlp_fine": {"type": "resnet", "n_blocks": 2, "d_hidden": 12, "combine_layer": 1,
                     "combine_type": "average"},
        "encoder": {"backbone": "resnet18", "pretrained": False, "num_layers": 1},
    }
    for key, value in overrides.items():
        conf[key] = value
    return conf


def _encoder_prefixes(net):
    """Names of the encoder layers that run: resnet conv1/bn1, then one stage per extra layer."""
    stages = tuple(f"encoder.model.layer{i}." for i in range(1, net.encoder.num_layers))
    return ("encoder.model.conv1.", "encoder.model.bn1.") + stages


def _used_state_dict(net):
    """State dict without the encoder layers that num_layers never runs (they would be MBs)."""
    keep = ("mlp_",) + _encoder_prefixes(net)
    return {k: v for k, v in net.state_dict().items() if k.startswith(keep)}


def _randomise(net, g):
    used = _encoder_prefixes(net)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("encoder.") and not name.startswith(used):
                continue
            if ".bn" in name and name.endswith(".weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            if name.endswith("lin_out.bias"):  # sigma mostly positive: no MLP dead under the ReLU
                p[3] = 1.0 + 0.5 * torch.rand((), generator=g)
        for name, b in net.named_buffers():
            if not name.startswith(used):
                continue
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


def gen_pixelnerf(o, w):
    from pyhocon import ConfigFactory
    ref = f"{PIXELNERF}:pixel-nerf/src/model/models.py:PixelNeRFNet.encode+forward"
    variants = [
        # (name, conf, SB, NS, H, W, B, focal kind, c kind)
        ("noenc_xyz_nocode", _net_conf(False, use_code=False), 1, 1, 6, 8, 5, "scalar", None),
        ("noenc_unnormalized_z", _net_conf(False, normalize_z=False), 2, 1, 6, 8, 4, "per_object", None),
        ("noenc_code_viewdirs", _net_conf(False, use_code_viewdirs=True), 1, 2, 6, 8, 6, "scalar", None),
        ("noenc_no_viewdirs", _net_conf(False, use_viewdirs=False, normalize_z=False), 2, 3, 6, 8, 3,
         "per_object", None),
        ("enc_scalar_focal", _net_conf(True), 1, 1, 10, 14, 7, "scalar", None),
        ("enc_multiview_c", _net_conf(True), 2, 2, 12, 8, 5, "per_object", "per_object_xy"),
        ("enc_fxfy_c_scalar", _net_conf(True, use_xyz=False), 2, 3, 8, 10, 6, "fxfy_per_object", "scalar"),
        ("enc_nearest_zeros", _net_conf(True, encoder={"backbone": "resnet18", "pretrained": False,
                                                       "num_layers": 1, "index_interp": "nearest",
                                                       "index_padding": "zeros"}),
         2, 1, 10, 10, 6, "per_object", None),
    ]
    for i, (name, conf, SB, NS, H, W, B, fkind, ckind) in enumerate(variants):
        g = torch.Generator().manual_seed(600 + i)
        torch.manual_seed(600 + i)
        net = o.models.PixelNeRFNet(ConfigFactory.from_dict(conf))
        _randomise(net, g)
        net.eval()
        images = torch.rand(SB, NS, 3, H, W, generator=g) * 2 - 1
        poses = torch.eye(4).repeat(SB, NS, 1, 1)
        for s in range(SB):
            for v in range(NS):
                angle = 0.3 * torch.randn(3, generator=g)
                K = torch.tensor([[0, -angle[2], angle[1]], [angle[2], 0, -angle[0]], [-angle[1], angle[0], 0]])
                poses[s, v, :3, :3] = torch.linalg.matrix_exp(K)
                poses[s, v, :3, 3] = poses[s, v, :3, 2] * 2.0 + 0.1 * torch.randn(3, generator=g)
        if fkind == "scalar":
            focal = torch.tensor(1.2 * W)
        elif fkind == "per_object":
            focal = W * (1 + torch.rand(SB, generator=g))
        else:  # one (fx, fy) per object
            focal = W * (1 + torch.rand(SB, 2, generator=g))
        c = None
        if ckind == "per_object_xy":
            c = torch.tensor([[W / 2 + 0.7, H / 2 - 0.4]]).repeat(SB, 1) + torch.rand(SB, 2, generator=g)
        elif ckind == "scalar":
            c = torch.tensor(4.3)
        xyz = torch.randn(SB, B, 3, generator=g) * 0.4
        viewdirs = torch.randn(SB, B, 3, generator=g)
        viewdirs = viewdirs / viewdirs.norm(dim=-1, keepdim=True)
        seen = {}
        if conf["use_encoder"]:
            index = net.encoder.index

            def recording_index(uv, cam_z=None, image_size=(), z_bounds=None, index=index):
                seen["uv"], seen["image_shape"] = uv.clone(), torch.as_tensor(image_size).clone()
                return index(uv, cam_z, image_size, z_bounds)

            net.encoder.index = recording_index
        with torch.no_grad():
            net.encode(images if NS > 1 or SB > 1 else images[:, 0], poses if NS > 1 or SB > 1 else poses[:, 0],
                       focal, c=c)
            kw = {"viewdirs": viewdirs} if conf["use_viewdirs"] else {}
            coarse = net(xyz, coarse=True, **kw)
            fine = net(xyz, coarse=False, **kw)
        inputs = {"xyz": xyz, "images": images if NS > 1 or SB > 1 else images[:, 0],
                  "poses": poses if NS > 1 or SB > 1 else poses[:, 0], "focal": focal}
        if conf["use_viewdirs"]:
            inputs["viewdirs"] = viewdirs
        if c is not None:
            inputs["c"] = c
        inputs.update({f"sd_{k}": v for k, v in _used_state_dict(net).items()})
        outputs = {"coarse": coarse, "fine": fine, "poses_w2c": net.poses,
                   "focal_internal": net.focal, "c_internal": net.c}
        if conf["use_encoder"]:
            outputs["uv"] = seen["uv"]
            outputs["image_shape"] = seen["image_shape"]
        w.add(f"pixelnerf_g17_{name}.npz", "inerf.src.model.models:PixelNeRFNet", ref,
              ["xyz", "coarse", "viewdirs"], {"conf": conf}, inputs, outputs, 1e-4, 1e-5,
              "PixelNeRFNet(ConfigFactory.from_dict(static.conf)); load_state_dict(strict=False) from "
              "in_sd_* (every MLP weight; with use_encoder the resnet18 conv1/bn1 weights and bn1 running "
              "stats, the only encoder layers num_layers=1 runs); eval(); encode(in_images, in_poses, "
              "in_focal (0-d, (SB,) per object, or (SB, 2) fx,fy per object), c=in_c if present ((SB,2) "
              "per object or 0-d)); out_coarse = forward(in_xyz, coarse=True, viewdirs=in_viewdirs if "
              "present), out_fine = the same with coarse=False; out_poses_w2c = net.poses (world->camera "
              "3x4), out_focal_internal = net.focal (fy negated), out_c_internal = net.c; out_uv / "
              "out_image_shape (when present) = the uv and image_size forward passed to encoder.index.")


# ------------------------------------------------------------------------- unproj_map / gen_rays
def gen_rays_cases(o, w):
    util = o.util
    ref_u = f"{PIXELNERF}:pixel-nerf/src/util/util.py:unproj_map"
    ref_g = f"{PIXELNERF}:pixel-nerf/src/util/util.py:gen_rays"
    variants = [  # (width, height, f, c)
        (7, 4, torch.tensor(5.5), None),
        (5, 9, torch.tensor([4.0, 6.5]), None),
        (12, 3, torch.tensor(9.0), torch.tensor([5.2, 1.7])),
        (4, 10, torch.tensor([3.3, 7.1]), torch.tensor([1.1, 6.0])),
    ]
    for i, (width, height, f, c) in enumerate(variants):
        out = util.unproj_map(width, height, f, c=c)
        inputs = {"f": f} if c is None else {"f": f, "c": c}
        w.add(f"unproj_map_g17_{i}.npz", "inerf.src.util.util:unproj_map", ref_u, ["width", "height", "f", "c"],
              {"width": width, "height": height}, inputs, {"0": out}, 1e-5, 1e-6,
              "f as 0-d or (2,) [fx, fy] tensor; c (2,) [cx, cy] tensor, omitted means None (image centre)")
    g = torch.Generator().manual_seed(700)
    for i, (width, height, f, c) in enumerate(variants):
        n = 2 + i % 2
        poses = torch.eye(4).repeat(n, 1, 1)
        for k in range(n):
            poses[k, :3, :3] = torch.linalg.matrix_exp(
                (lambda a: torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]]))(
                    torch.randn(3, generator=g)))
            poses[k, :3, 3] = torch.randn(3, generator=g)
        z_near, z_far = 0.5 + 0.1 * i, 2.0 + i
        out = util.gen_rays(poses, width, height, f, z_near, z_far, c=c)
        inputs = {"poses": poses, "focal": f} if c is None else {"poses": poses, "focal": f, "c": c}
        w.add(f"gen_rays_g17_{i}.npz", "inerf.src.util.util:gen_rays", ref_g,
              ["poses", "width", "height", "focal", "z_near", "z_far", "c"],
              {"width": width, "height": height, "z_near": z_near, "z_far": z_far}, inputs, {"0": out},
              1e-5, 1e-5, "focal as 0-d or (2,) [fx, fy] tensor; c (2,) tensor or omitted (None); returns "
              "(B,H,W,8) = origin, unit direction, near, far. ndc=False")


# ------------------------------------------------------------------------------- training step
def _step_conf():
    model = _net_conf(True)
    model["mlp_coarse"] = {"type": "resnet", "n_blocks": 3, "d_hidden": 16, "combine_layer": 2,
                           "combine_type": "average"}
    model["mlp_fine"] = {"type": "resnet", "n_blocks": 2, "d_hidden": 12, "combine_layer": 1,
                         "combine_type": "average"}
    return {
        "model": model,
        "renderer": {"n_coarse": 8, "n_fine": 6, "n_fine_depth": 2, "depth_std": 0.01, "noise_std": 0.0,
                     "white_bkgd": True, "eval_batch_size": 100000},
        "loss": {"rgb": {"use_l1": False}, "rgb_fine": {"use_l1": False}, "lambda_coarse": 0.7,
                 "lambda_fine": 1.3},
        "train": {"print_interval": 1, "save_interval": 1, "vis_interval": 1, "eval_interval": 1},
    }


def gen_train_step(o, w):
    from pyhocon import ConfigFactory
    ref = f"{PIXELNERF}:pixel-nerf/train/train.py:PixelNeRFTrainer.calc_losses"
    conf_dict = _step_conf()
    variants = [  # (name, nviews, SB, NV, H, W, rays per object, lindisp, white, encoder num_layers)
        ("mv2", "2", 2, 3, 10, 12, 6, False, True, 1),
        ("sv1_black", "1", 2, 2, 8, 8, 5, True, False, 1),
        ("enc2_layers", "2", 2, 2, 12, 10, 5, False, True, 2),
    ]
    for k, (name, nviews, SB, NV, H, W, R, lindisp, white, num_layers) in enumerate(variants):
        conf_dict["renderer"]["white_bkgd"] = white
        conf_dict["model"]["encoder"]["num_layers"] = num_layers
        z_near, z_far = 1.0, 3.0
        conf = ConfigFactory.from_dict(conf_dict)
        args = types.SimpleNamespace(gpu_id=[0], batch_size=SB, nviews=nviews, freeze_enc=None,
                                     no_bbox_step=100000, fixed_test=None, ray_batch_size=R, resume=False,
                                     checkpoints_path="/nonexistent", name="golden",
                                     dataset_format="stub", datadir="stub")
        dset = types.SimpleNamespace(z_near=z_near, z_far=z_far, lindisp=lindisp)
        _stub_training(o, args, conf, dset)
        torch.manual_seed(800 + k)
        ns = runpy.run_path(os.path.join(o.pixelnerf_root, "train", "train.py"), run_name="pixelnerf_train")
        trainer, net, renderer = ns["trainer"], ns["net"], ns["renderer"]
        g = torch.Generator().manual_seed(810 + k)
        _randomise(net, g)
        images = torch.rand(SB, NV, 3, H, W, generator=g) * 2 - 1
        poses = torch.eye(4).repeat(SB, NV, 1, 1)
        for s in range(SB):
            for v in range(NV):
                a = 0.4 * torch.randn(3, generator=g)
                Km = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
                poses[s, v, :3, :3] = torch.linalg.matrix_exp(Km)
                poses[s, v, :3, 3] = poses[s, v, :3, 2] * 2.0
        focal = W * (1.0 + 0.3 * torch.rand(SB, generator=g))
        data = {"images": images, "poses": poses, "focal": focal}
        net.train()
        renderer.eval()
        net.zero_grad(set_to_none=True)
        torch_seed, np_seed = 820 + k, 830 + k
        torch.manual_seed(torch_seed)
        np.random.seed(np_seed)
        losses = trainer.calc_losses(data, is_train=True, global_step=0)
        sd = _used_state_dict(net)
        params = dict(net.named_parameters())
        outputs = {"rc": torch.tensor(losses["rc"]), "rf": torch.tensor(losses["rf"]),
                   "t": torch.tensor(losses["t"])}
        for key in sd:
            if key in params:
                grad = params[key].grad
                outputs[f"grad_{key}"] = torch.zeros_like(params[key]) if grad is None else grad
        static = {"conf": conf_dict, "nviews": nviews, "ray_batch_size": R, "z_near": z_near, "z_far": z_far,
                  "lindisp": lindisp, "torch_seed": torch_seed, "numpy_seed": np_seed, "global_step": 0,
                  "is_train": True, "no_bbox_step": 100000}
        inputs = {"images": images, "poses": poses, "focal": focal,
                  **{f"sd_{key}": v for key, v in sd.items()}}
        w.add(f"train_step_g17_{name}.npz", "inerf.train.train:PixelNeRFTrainer.calc_losses", ref,
              ["images", "poses", "focal"], json.loads(json.dumps(static)), inputs, outputs, 1e-5, 1e-6,
              "One pixelNeRF training step (train/train.py PixelNeRFTrainer.calc_losses, is_train=True: "
              "coarse + fine MSE, loss = lambda_coarse*rc + lambda_fine*rf, then backward). Build "
              "net = make_model(static.conf.model), load_state_dict(strict=False) from in_sd_* (MLPs, and the "
              "resnet18 conv1/bn1 (+ layer1 with num_layers=2): the only encoder layers that run), "
              "renderer = NeRFRenderer.from_conf(static.conf.renderer, lindisp=static.lindisp); trainer "
              "state: nviews from static.nviews, ray_batch_size, z_near/z_far, lambdas and MSE criteria from "
              "static.conf.loss, use_bbox = no_bbox_step > 0 with no bbox in the batch. net.train() (batch "
              "statistics in the encoder's BatchNorm), renderer.eval(), grads zeroed. Deterministic "
              "sampling: torch.manual_seed(torch_seed) and np.random.seed(numpy_seed) right before "
              "calc_losses(data={images (SB,NV,3,H,W) in [-1,1], poses (SB,NV,4,4), focal (SB,)}, "
              "is_train=True, global_step=0); the draws are, in order, torch.randint for the view count, "
              "the source views (torch.randint for one view, numpy choice for several), torch.randint ray "
              "pixels per object, then the renderer's rand_like / rand / rand_like / randn_like on CPU. "
              "out_rc/out_rf/out_t: the loss dict (rc, rf scaled by their lambdas); out_grad_<param>: the "
              "gradient of every stored parameter (zeros where the original left it None). The port matched "
              "to 1e-7 of each output's largest entry on CPU (torch 2.13).")


def _stub_training(o, args, conf, dset):
    """Stubs for train.py's command line, datasets and Trainer base class."""
    o.util.args.parse_args = lambda *a, **k: (args, conf)
    data = types.ModuleType("data")
    data.get_split_dataset = lambda *a, **k: (dset, dset, None)
    sys.modules["data"] = data
    trainlib = types.ModuleType("trainlib")

    class Trainer:
        def __init__(self, net, train_dataset, test_dataset, args, conf, device=None):
            self.net, self.args, self.device = net, args, device

        def start(self):
            pass

    trainlib.Trainer = Trainer
    sys.modules["trainlib"] = trainlib


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", required=True, help="export of yenchenlin/iNeRF-public")
    parser.add_argument("--original-nerf", required=True, help="export of salykovaa/inerf")
    parser.add_argument("--out", default="tests/golden/inerf")
    parser.add_argument("--only", nargs="*", default=None, help="section names to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    o = import_originals(os.path.abspath(args.original), os.path.abspath(args.original_nerf))
    w = Writer(args.out)
    sections = {"camera_transf": gen_camera_transf, "nerf_mlp": gen_nerf_mlp, "resnetfc": gen_resnetfc,
                "composite": gen_composite, "encoder_index": gen_encoder_index, "pixelnerf": gen_pixelnerf,
                "rays": gen_rays_cases, "train_step": gen_train_step}
    for name, fn in sections.items():
        if args.only is None or name in args.only:
            fn(o, w)
    w.save()


if __name__ == "__main__":
    main()
