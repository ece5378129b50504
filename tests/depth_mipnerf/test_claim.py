"""The paper's central claim at CPU scale: with 3 training views, supervising the ray weights with
the bounded-CDF depth loss gives a higher held-out PSNR (and better depth) than the same run
without depth, after the same number of steps."""


def test_bounded_cdf_beats_no_depth_with_three_views(cdf_run, nodepth_run):
    ours, baseline = cdf_run["metrics"], nodepth_run["metrics"]
    print(f"held-out PSNR: CDF {ours['psnr']:.2f} dB vs no depth {baseline['psnr']:.2f} dB; depth error "
          f"{ours['depth_abs_err']:.3f} vs {baseline['depth_abs_err']:.3f}; train "
          f"{cdf_run['train_seconds']:.0f} s + {nodepth_run['train_seconds']:.0f} s")
    assert ours["n_images"] == baseline["n_images"] == 8
    assert ours["psnr"] > baseline["psnr"] + 1.0
    assert ours["depth_abs_err"] < baseline["depth_abs_err"]
