"""monodepth2 ResNet encoder and the MINE depth decoder."""
