"""Plane geometry, homography warping and volume rendering of MPIs."""
