"""`make demo-mine`: a small MINE trained for a few CPU minutes on the synthetic forward scene, its
held-out metrics, and zoom-in / swing videos of a real photo (scikit-image's astronaut).

    python -m mine.scripts.demo [--out runs/mine/demo] [--epochs 6] [--num_frames 90] [--extra_config JSON]

Steps: render the `forward` scene at 256x128 (data_tools.synth: COLMAP model with the true poses
and sparse points), lay it out as MINE's LLFF loader reads it (every 8th view held out in
`images_val`), train with `mine/start_training.sh` (llff config, ResNet-18, 8 planes, 60 steps), evaluate
with `mine.eval`, and render the astronaut (cropped to 2:1) with `mine.visualizations.image_to_video`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import imageio.v3 as iio

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = (256, 128)  # (W, H): multiples of 128, as the decoder needs

DEMO_CONFIG = {
    "data.img_w": SIZE[0], "data.img_h": SIZE[1], "data.img_pre_downsample_ratio": 1,
    "data.per_gpu_batch_size": 2, "data.visible_point_count": 256,
    "model.num_layers": 18, "model.imagenet_pretrained": False,
    "mpi.num_bins_coarse": 8, "training.eval_interval": 100000,
    "lr.decay_steps": "1000", "lr.backbone_lr": 0.001, "lr.decoder_lr": 0.001,
}


def run(cmd, **kwargs):
    """Runs a command from the repository root, echoing it; raises on failure."""
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO, **kwargs)


def make_scene(scene_dir, views):
    """The synthetic forward-facing scene at SIZE (skipped when already there)."""
    if not os.path.isfile(os.path.join(scene_dir, "scene.json")):
        run([sys.executable, "-m", "data_tools.synth", "--scene", "forward", "--res", f"{SIZE[0]}x{SIZE[1]}",
             "--views", str(views), "--out", scene_dir, "--overwrite"])


def llff_layout(scene_dir, root, holdout=8):
    """root/forward/{sparse/0, images, images_val}: every `holdout`-th view goes to images_val."""
    scene = os.path.join(root, "forward")
    if os.path.isdir(scene):
        shutil.rmtree(scene)
    shutil.copytree(os.path.join(scene_dir, "sparse"), os.path.join(scene, "sparse"))
    names = sorted(os.listdir(os.path.join(scene_dir, "images")))
    for i, name in enumerate(names):
        folder = os.path.join(scene, "images_val" if i % holdout == 0 else "images")
        os.makedirs(folder, exist_ok=True)
        shutil.copy(os.path.join(scene_dir, "images", name), folder)
    return root


def astronaut(path):
    """skimage's astronaut, centre-cropped to the demo's 2:1 aspect ratio."""
    from skimage import data

    img = data.astronaut()
    h = img.shape[1] * SIZE[1] // SIZE[0]
    top = (img.shape[0] - h) // 2
    iio.imwrite(path, img[top: top + h])
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/mine/demo", help="run folder (its parent is the WORKSPACE)")
    parser.add_argument("--synth_dir", default="data/synthetic/forward_256x128")
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=6, help="10 steps per epoch with 24 views")
    parser.add_argument("--num_frames", type=int, default=90, help="frames per video trajectory")
    parser.add_argument("--extra_config", default="{}", help="JSON overrides of the demo config")
    args = parser.parse_args(argv)

    out = os.path.abspath(os.path.join(REPO, args.out))
    workspace, version = os.path.dirname(out), os.path.basename(out)
    os.makedirs(workspace, exist_ok=True)
    synth_dir = os.path.abspath(os.path.join(REPO, args.synth_dir))
    make_scene(synth_dir, args.views)
    data_root = llff_layout(synth_dir, os.path.join(workspace, version + "_data"))

    if os.path.isdir(out):
        shutil.rmtree(out)  # a fresh run, not a resume of an older demo
    config = dict(DEMO_CONFIG, **{"data.training_set_path": data_root, "data.val_set_path": data_root,
                                  "training.epochs": args.epochs}, **json.loads(args.extra_config))
    port = os.environ.get("MASTER_PORT", "29512")
    run(["bash", "mine/start_training.sh", f"MASTER_PORT={port}", "GPUS_PER_NODE=1", f"WORKSPACE={workspace}",
         "DATASET=llff", f"VERSION={version}", f"EXTRA_CONFIG={json.dumps(config)}"],
        env=dict(os.environ, PYTHON=sys.executable))
    checkpoint = os.path.join(out, "checkpoint_latest.pth")

    run([sys.executable, "-m", "mine.eval", "--checkpoint_path", checkpoint, "--output_dir", os.path.join(out, "eval")])
    image = astronaut(os.path.join(out, "astronaut.png"))
    run([sys.executable, "-m", "mine.visualizations.image_to_video", "--checkpoint_path", checkpoint,
         "--data_path", image, "--output_dir", os.path.join(out, "videos"), "--num_frames", str(args.num_frames)])

    with open(os.path.join(out, "eval", "metrics.json")) as f:
        metrics = json.load(f)["protocols"]["next_view"]
    print(f"\nMINE demo: {out}\n  checkpoint  {checkpoint}\n  training    {os.path.join(out, 'training.log')}"
          f" (TensorBoard: tensorboard --logdir {out})\n  held-out    PSNR {metrics['psnr']:.2f} dB, "
          f"SSIM {metrics['ssim']:.3f}, LPIPS-VGG {metrics['lpips']} ({metrics['count']} views)"
          f"\n  videos      {os.path.join(out, 'videos')}")
    return metrics


if __name__ == "__main__":
    main()
