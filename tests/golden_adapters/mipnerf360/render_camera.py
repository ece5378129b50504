"""Adapters for mipnerf360.internal.render / camera_utils cases that are not plain calls."""

from tests.golden_adapters import arg_inputs, call_args


def _numpy_call(case, inputs, function):
    """Pose and path utilities take numpy float64 poses, as in multinerf's loaders."""
    return function(*(x.numpy() for x in call_args(case, inputs)), **case["static"])


def _pixels_to_rays(case, inputs, function):
    """Every argument by keyword: an optional pixtocam_ndc comes after the static distortion_params."""
    return function(**arg_inputs(case, inputs), **case["static"])


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
    _CAMERA_UTILS + "pixels_to_rays": _pixels_to_rays,
}
