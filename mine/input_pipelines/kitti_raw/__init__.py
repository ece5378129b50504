"""KITTI raw: rectified stereo pairs with their calibration (never released by MINE)."""
