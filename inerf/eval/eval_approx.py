# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF's quick evaluation: one random target view per object, PSNR and SSIM.

    python -m inerf.eval.eval_approx -n srn_car -D data/cars [--split val] [-P '64'] [--batch_size 4]
        [--seed 1234] [--coarse]
"""

import torch
import tqdm

from inerf.eval.eval import image_metrics
from inerf.src import util
from inerf.src.data import get_split_dataset
from inerf.src.model import make_model
from inerf.src.render import NeRFRenderer


def extra_args(parser):
    """eval_approx's flags (the release's, plus --num_workers)."""
    parser.add_argument("--split", type=str, default="val", help="Split of data to use train | val | test")
    parser.add_argument("--source", "-P", type=str, default="64",
                        help="Source view(s) in image, in increasing order. -1 to use random 1 view.")
    parser.add_argument("--batch_size", type=int, default=4, help="Batch size")
    parser.add_argument("--seed", type=int, default=1234, help="Random seed for selecting target views of each object")
    parser.add_argument("--coarse", action="store_true", help="Coarse network as fine")
    parser.add_argument("--num_workers", type=int, default=8, help="DataLoader workers (the release's 8)")
    return parser


def main(argv=None):
    """Returns (mean psnr, mean ssim) over the objects."""
    args, conf = util.args.parse_args(extra_args, argv=argv)
    args.resume = True
    device = util.get_cuda(args.gpu_id[0])
    net = make_model(conf["model"]).to(device=device)
    net.load_weights(args)
    if args.coarse:
        net.mlp_fine = None
    dset = get_split_dataset(args.dataset_format, args.datadir, want_split=args.split, training=False)
    data_loader = torch.utils.data.DataLoader(dset, batch_size=args.batch_size, shuffle=False,
                                              num_workers=args.num_workers, pin_memory=False)
    renderer = NeRFRenderer.from_conf(conf["renderer"], eval_batch_size=args.ray_batch_size).to(device=device)
    if renderer.n_coarse < 64:
        renderer.n_coarse = 64
    if args.coarse:
        renderer.n_coarse = 64
        renderer.n_fine = 128
        renderer.using_fine = True
    render_par = renderer.bind_parallel(net, args.gpu_id, simple_output=True).eval()
    z_near, z_far = dset.z_near, dset.z_far
    torch.random.manual_seed(args.seed)

    total_psnr, total_ssim, cnt = 0.0, 0.0, 0
    source = torch.tensor(list(map(int, args.source.split())), dtype=torch.long)
    NS = len(source)
    random_source = NS == 1 and source[0] == -1
    with torch.no_grad():
        for data in tqdm.tqdm(data_loader, total=len(data_loader)):
            images, poses, focal = data["images"], data["poses"], data["focal"][0]
            SB, NV, _, H, W = images.shape
            src_view = torch.randint(0, NV, (SB, 1)) if random_source else source.unsqueeze(0).expand(SB, -1)
            # a random target view that is not a source view
            dest_view = torch.randint(0, NV - NS, (SB, 1))
            for i in range(NS):
                dest_view += dest_view >= src_view[:, i:i + 1]
            dest_poses = util.batched_index_select_nd(poses, dest_view)
            all_rays = util.gen_rays(dest_poses.reshape(-1, 4, 4), W, H, focal, z_near, z_far).reshape(SB, -1, 8)
            net.encode(util.batched_index_select_nd(images, src_view).to(device=device),
                       util.batched_index_select_nd(poses, src_view).to(device=device), focal.to(device=device))
            rgb_fine, _ = render_par(all_rays.to(device=device))
            rgb_fine = rgb_fine.reshape(SB, H, W, 3).cpu().numpy()
            images_gt = util.batched_index_select_nd(images * 0.5 + 0.5, dest_view).reshape(SB, 3, H, W)
            rgb_gt_all = images_gt.permute(0, 2, 3, 1).contiguous().numpy()
            for sb in range(SB):
                psnr, ssim = image_metrics(rgb_fine[sb], rgb_gt_all[sb])
                total_ssim += ssim
                total_psnr += psnr
            cnt += SB
            print("curr psnr", total_psnr / cnt, "ssim", total_ssim / cnt)
    print("final psnr", total_psnr / cnt, "ssim", total_ssim / cnt)
    return total_psnr / cnt, total_ssim / cnt


if __name__ == "__main__":
    main()
