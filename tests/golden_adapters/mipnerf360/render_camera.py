"""Adapters for mipnerf360.internal.render / camera_utils cases that are not plain calls."""


def _numpy_call(case, inputs, function):
    """Pose and path utilities take numpy float64 poses, as in multinerf's loaders."""
    args = [inputs[name].numpy() for name in case["args"]]
    return function(*args, **case["static"])


def _ndc_rays(case, inputs, function):
    """pixtocam_ndc is a keyword: multinerf's pixels_to_rays takes distortion_params before it."""
    return function(**inputs, **case["static"])


_CAMERA_UTILS = "mipnerf360.internal.camera_utils:"

ADAPTERS = {
    **{
        _CAMERA_UTILS + name: _numpy_call
        for name in (
            "recenter_poses",
            "average_pose",
            "focus_point_fn",
            "transform_poses_pca",
            "generate_spiral_path",
            "generate_ellipse_path",
            "generate_interpolated_path",
        )
    },
    "camera_utils_pixels_to_rays_ndc.npz": _ndc_rays,
}
