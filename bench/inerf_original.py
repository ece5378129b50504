"""Times yenchenlin/iNeRF-public's pose estimation loop (pixel-nerf/eval/pose_estimation.py) on the CPU.

    python bench/inerf_original.py INERF_PUBLIC_TREE [--steps 5] [--n_steps 300] [--size 128] [--rays 1024] [--json]

Run with an interpreter that has torch, numpy and pyhocon (not the project venv); the original's modules are
imported from INERF_PUBLIC_TREE/pixel-nerf/src, never copied. As in tests/golden/tools/gen_inerf.py, cv2 is a
stand-in holding the one constant util names at import, and of torchvision only models/resnet.py is loaded
(its compiled ops need not match torch; transforms is an empty module, unused here).

The release's script runs at import and needs a checkpoint and two image files, so its per-step body is
repeated here with the original's own functions and in its order: net.encode of the source image at the input
pose, util.gen_rays of the whole H x W image at the current pose, 1024 random pixels (torch.randint, the
'random' sampling), render_par (renderer.bind_parallel(net, [0], simple_output=True)) of those rays, MSELoss
against the target's pixels, zero_grad, backward, Adam on the raw 4x4 pose (lr 1e-3). The model is srn.conf's
(ResNet-34 encoder with random weights: pretrained off, no download; speed does not depend on the weights);
source and target are random 128x128 images, focal 131.25, radius 1.3, z 0.8..1.8 (the script's defaults).
--steps steps are timed after one warm-up step and scaled to --n_steps for one estimate. The last line with
--json is {"s_per_step": s, "s_per_estimate": s, ...}.
"""

import argparse
import importlib.util
import json
import os
import sys
import time
import types

import torch


def import_original(tree):
    """util, model.make_model and render.NeRFRenderer of pixel-nerf/src, with the stand-ins above."""
    cv2 = types.ModuleType("cv2")
    cv2.COLORMAP_HOT = 11
    sys.modules.setdefault("cv2", cv2)
    root = os.path.dirname(importlib.util.find_spec("torchvision").origin)
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
    sys.path.insert(0, os.path.join(os.path.abspath(tree), "pixel-nerf", "src"))
    import util  # noqa: E402
    from model import make_model  # noqa: E402
    from render import NeRFRenderer  # noqa: E402
    return util, make_model, NeRFRenderer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--n_steps", type=int, default=300, help="steps of one estimate (the time is scaled)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rays", type=int, default=1024, help="rays per step (the script's n_rays: 1024)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    util, make_model, NeRFRenderer = import_original(args.tree)
    from pyhocon import ConfigFactory

    conf = ConfigFactory.parse_file(os.path.join(args.tree, "pixel-nerf", "conf", "exp", "srn.conf"))
    conf.put("model.encoder.pretrained", False)
    torch.manual_seed(0)
    device = torch.device("cpu")
    net = make_model(conf["model"]).to(device=device)
    renderer = NeRFRenderer.from_conf(conf["renderer"], eval_batch_size=50000).to(device=device)
    render_par = renderer.bind_parallel(net, [0], simple_output=True)

    H = W = args.size
    z_near, z_far = 0.8, 1.8
    focal = torch.tensor(131.25, dtype=torch.float32, device=device)
    generator = torch.Generator().manual_seed(1)
    input_image = torch.rand(3, H, W, generator=generator) * 2 - 1  # get_image_to_tensor_balanced's range
    input_pose = torch.eye(4)
    input_pose[2, -1] = 1.3
    target_image_flatten = torch.rand(H * W, 3, generator=generator)
    cam_pose = torch.clone(input_pose.detach()).unsqueeze(0)
    cam_pose.requires_grad = True
    optimizer = torch.optim.Adam(params=[cam_pose], lr=1e-3)
    mse_loss = torch.nn.MSELoss()
    n_rays = args.rays

    def step():
        net.encode(input_image.unsqueeze(0), input_pose.unsqueeze(0).to(device=device), focal)
        render_rays = util.gen_rays(cam_pose, W, H, focal, z_near, z_far)
        render_rays_flatten = render_rays.view(-1, 8)
        idxs_sampled = torch.randint(0, H * W, (n_rays,))
        render_rays_sampled = render_rays_flatten[idxs_sampled].to(device=device)
        rgb, _ = render_par(render_rays_sampled[None])
        loss = mse_loss(rgb, target_image_flatten[idxs_sampled][None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    step()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    per_step = (time.perf_counter() - start) / args.steps
    result = {"original": "yenchenlin/iNeRF-public pixel-nerf/eval/pose_estimation.py", "threads": torch.get_num_threads(),
              "torch": torch.__version__, "s_per_step": per_step, "s_per_estimate": per_step * args.n_steps,
              "n_steps": args.n_steps, "loss": loss.item(), "rays": n_rays}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{per_step:.3f} s/step, {per_step * args.n_steps:.1f} s per pose estimate ({args.n_steps} steps)")


if __name__ == "__main__":
    main()
