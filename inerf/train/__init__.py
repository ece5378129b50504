"""pixelNeRF training (python -m inerf.train.train)."""
