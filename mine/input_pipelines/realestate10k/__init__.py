"""RealEstate10K: camera files of the release + extracted frames + sparse points (never released by MINE)."""
