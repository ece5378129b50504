"""Input pipelines: LLFF (released), RealEstate10K, KITTI raw, Flowers light fields."""
