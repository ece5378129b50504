"""A small OpenEXR reader for depth/normal passes (scanline files, NONE/ZIPS/ZIP compression,
HALF/FLOAT/UINT channels): the fork reads them with pyexr, which needs the OpenEXR C library."""

import struct
import zlib

import numpy as np

_MAGIC = 20000630
_PIXEL_TYPES = {0: np.dtype('<u4'), 1: np.dtype('<f2'), 2: np.dtype('<f4')}
_LINES_PER_BLOCK = {0: 1, 2: 1, 3: 16}  # NONE, ZIPS, ZIP
_COMPRESSION_NAMES = {0: 'NONE', 1: 'RLE', 2: 'ZIPS', 3: 'ZIP', 4: 'PIZ', 5: 'PXR24', 6: 'B44',
                      7: 'B44A', 8: 'DWAA', 9: 'DWAB'}


def _read_header(data, path):
    """({attribute name: raw bytes}, offset just past the header)."""
    if len(data) < 8 or struct.unpack_from('<i', data, 0)[0] != _MAGIC:
        raise ValueError(f'{path}: not an OpenEXR file')
    if struct.unpack_from('<i', data, 4)[0] & 0x1200:  # tiled or multi-part
        raise ValueError(f'{path}: only single-part scanline EXR files are supported')
    attrs, pos = {}, 8
    while data[pos] != 0:
        name_end = data.index(b'\0', pos)
        type_end = data.index(b'\0', name_end + 1)
        size = struct.unpack_from('<i', data, type_end + 1)[0]
        attrs[data[pos:name_end].decode()] = data[type_end + 5:type_end + 5 + size]
        pos = type_end + 5 + size
    return attrs, pos + 1


def _channels(chlist):
    """[(name, numpy dtype)] of a chlist attribute, in file (alphabetical) order."""
    channels, pos = [], 0
    while chlist[pos] != 0:
        name_end = chlist.index(b'\0', pos)
        pixel_type = struct.unpack_from('<i', chlist, name_end + 1)[0]
        channels.append((chlist[pos:name_end].decode(), _PIXEL_TYPES[pixel_type]))
        pos = name_end + 1 + 16
    return channels


def _unzip(raw, expected):
    """zlib-inflate, undo OpenEXR's byte predictor and its two-half interleave."""
    t = np.frombuffer(zlib.decompress(raw), np.uint8)
    if t.size != expected:
        raise ValueError('ZIP block has the wrong size')
    # t[i] = t[i-1] + raw[i] - 128 (mod 256): a running sum; raw[0] is stored as it is.
    t = ((np.cumsum(t.astype(np.int64) - 128) + 128) % 256).astype(np.uint8)
    out = np.empty_like(t)
    half = (t.size + 1) // 2
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


def read_exr(path):
    """{channel name: float32 [H, W]} of an EXR file; a clear ValueError for what it cannot read."""
    with open(path, 'rb') as f:
        data = f.read()
    attrs, pos = _read_header(data, path)
    compression = attrs['compression'][0]
    if compression not in _LINES_PER_BLOCK:
        raise ValueError(f'{path}: EXR compression {_COMPRESSION_NAMES.get(compression, compression)} is not '
                         'supported (NONE, ZIPS, ZIP are); re-save it with ZIP compression')
    channels = _channels(attrs['channels'])
    xmin, ymin, xmax, ymax = struct.unpack('<4i', attrs['dataWindow'])
    width, height = xmax - xmin + 1, ymax - ymin + 1
    lines = _LINES_PER_BLOCK[compression]
    n_blocks = (height + lines - 1) // lines
    offsets = struct.unpack_from(f'<{n_blocks}Q', data, pos)
    out = {name: np.empty((height, width), np.float32) for name, _ in channels}
    # One scanline = every channel's row in turn: a structured record per line.
    line = np.dtype([(name, dtype, (width,)) for name, dtype in channels])
    for offset in offsets:
        y, size = struct.unpack_from('<ii', data, offset)
        rows = min(lines, ymax + 1 - y)
        raw = data[offset + 8:offset + 8 + size]
        try:
            block = raw if size == rows * line.itemsize else _unzip(raw, rows * line.itemsize)
        except (zlib.error, ValueError) as error:
            raise ValueError(f'{path}: corrupt scanline block at y = {y}: {error}') from error
        records = np.frombuffer(block, line, rows)
        for name, _ in channels:
            out[name][y - ymin:y - ymin + rows] = records[name]
    return out
