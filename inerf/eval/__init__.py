"""pixelNeRF / iNeRF-release scripts: gen_video, eval, eval_approx, calc_metrics, eval_real, pose_estimation."""
