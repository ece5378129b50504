"""The released iNeRF code: pixelNeRF (model, renderer, data, utilities) as in iNeRF-public."""
