"""Ray containers and image I/O."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from mipnerf360.internal import utils


def _rays(n=4):
    return utils.Rays(*(torch.rand(n, k) for k in (3, 3, 3, 1, 2, 1, 1, 1, 1)))


def test_map_applies_to_every_tensor_and_keeps_none():
    rays = _rays()
    batch = utils.Batch(rays=rays, rgb=torch.rand(4, 3))
    half = batch.map(lambda x: x[:2])
    assert isinstance(half.rays, utils.Rays)
    assert half.rays.origins.shape == (2, 3) and half.rays.imageplane.shape == (2, 2)
    assert half.rgb.shape == (2, 3)
    assert half.disps is None and half.rays.exposure_idx is None
    torch.testing.assert_close(half.rays.directions, rays.directions[:2])
    assert batch.rays.origins.shape == (4, 3)  # The original is untouched.


def test_containers_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _rays().origins = torch.zeros(4, 3)


def test_enums_parse_config_strings():
    assert utils.BatchingMethod('single_image') is utils.BatchingMethod.SINGLE_IMAGE
    assert utils.DataSplit('test') is utils.DataSplit.TEST


def test_save_img_u8_clips_nan_and_truncates(tmp_path):
    img = torch.tensor([[[0.5, 1.5, -1.0], [float('nan'), 1.0, 0.999]]])
    utils.save_img_u8(img, tmp_path / 'a.png')
    loaded = utils.load_img(tmp_path / 'a.png')
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, [[[127, 255, 0], [0, 255, 254]]])


def test_save_img_f32_round_trip(tmp_path):
    depth = np.array([[1.5, np.nan], [1e6, -2.0]], dtype=np.float32)
    utils.save_img_f32(depth, tmp_path / 'd.tiff')
    np.testing.assert_array_equal(utils.load_img(tmp_path / 'd.tiff'), [[1.5, 0], [1e6, -2.0]])


def test_load_exif_reads_exposure_tags(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = 'maker'  # Make, in IFD0.
    exif.get_ifd(0x8769)[0x829A] = 0.01  # ExposureTime, in the Exif sub-IFD.
    exif.get_ifd(0x8769)[0x8827] = 200  # ISOSpeedRatings.
    Image.new('RGB', (4, 4)).save(tmp_path / 'e.jpg', exif=exif)
    tags = utils.load_exif(tmp_path / 'e.jpg')
    assert tags['Make'] == 'maker' and tags['ISOSpeedRatings'] == 200
    assert float(tags['ExposureTime']) == pytest.approx(0.01)
    Image.new('RGB', (4, 4)).save(tmp_path / 'plain.png')
    assert utils.load_exif(tmp_path / 'plain.png') == {}


def test_file_helpers(tmp_path):
    utils.makedirs(tmp_path / 'a' / 'b')
    utils.makedirs(tmp_path / 'a' / 'b')  # Exists already: fine.
    with utils.open_file(tmp_path / 'a' / 'b' / 'f.txt', 'w') as f:
        f.write('x')
    assert utils.file_exists(tmp_path / 'a' / 'b' / 'f.txt') and utils.isdir(tmp_path / 'a')
    assert utils.listdir(tmp_path / 'a' / 'b') == ['f.txt']
