"""common.images.naming: decode failures of every reader name the file; a good read passes through."""

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from common import images


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.png"
    iio.imwrite(good, np.full((8, 8, 3), 7, np.uint8))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    return good, truncated, text


@pytest.mark.parametrize("reader", [lambda p: np.array(Image.open(p)), lambda p: iio.imread(p)])
def test_bad_files_are_named(files, reader):
    good, truncated, text = files
    with images.naming(good):
        assert reader(good)[0, 0, 0] == 7
    for bad in (truncated, text):
        with pytest.raises(images.ImageFileError, match=bad.name):
            with images.naming(bad):
                reader(bad)


def test_a_missing_file_stays_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        with images.naming(tmp_path / "none.png"):
            Image.open(tmp_path / "none.png")
