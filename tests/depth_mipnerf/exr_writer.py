"""A minimal OpenEXR writer (scanline, NONE or ZIP, FLOAT channels) for the reader's tests."""

import struct
import zlib

import numpy as np


def _attr(name, kind, payload):
    return name.encode() + b'\0' + kind.encode() + b'\0' + struct.pack('<i', len(payload)) + payload


def _zip(raw):
    """OpenEXR's ZIP encoding: even/odd byte split, byte-difference predictor, zlib."""
    t = np.frombuffer(raw, np.uint8)
    tmp = np.concatenate([t[0::2], t[1::2]]).astype(np.int64)
    pred = tmp.copy()
    pred[1:] = (tmp[1:] - tmp[:-1] + 128) % 256
    return zlib.compress(pred.astype(np.uint8).tobytes())


def write_exr(path, channels, zip_compression=True):
    """channels: {name: float32 [H, W]}; names are written sorted, as OpenEXR requires."""
    names = sorted(channels)
    h, w = channels[names[0]].shape
    chlist = b''.join(n.encode() + b'\0' + struct.pack('<iB3xii', 2, 0, 1, 1) for n in names) + b'\0'
    header = (_attr('channels', 'chlist', chlist)
              + _attr('compression', 'compression', bytes([3 if zip_compression else 0]))
              + _attr('dataWindow', 'box2i', struct.pack('<4i', 0, 0, w - 1, h - 1))
              + _attr('displayWindow', 'box2i', struct.pack('<4i', 0, 0, w - 1, h - 1))
              + _attr('lineOrder', 'lineOrder', b'\0')
              + _attr('pixelAspectRatio', 'float', struct.pack('<f', 1))
              + _attr('screenWindowCenter', 'v2f', struct.pack('<2f', 0, 0))
              + _attr('screenWindowWidth', 'float', struct.pack('<f', 1)) + b'\0')
    lines = 16 if zip_compression else 1
    blocks = []
    for y in range(0, h, lines):
        raw = b''.join(np.asarray(channels[n][r], '<f4').tobytes() for r in range(y, min(y + lines, h)) for n in names)
        data = _zip(raw) if zip_compression else raw
        if len(data) >= len(raw):
            data = raw
        blocks.append(struct.pack('<ii', y, len(data)) + data)
    start = 8 + len(header) + 8 * len(blocks)
    offsets, pos = [], start
    for b in blocks:
        offsets.append(pos)
        pos += len(b)
    with open(path, 'wb') as f:
        f.write(struct.pack('<ii', 20000630, 2) + header + struct.pack(f'<{len(offsets)}Q', *offsets) + b''.join(blocks))
