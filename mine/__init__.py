"""MINE (vincentfung13/MINE): continuous-depth MPI from a single image, in device-agnostic PyTorch."""
