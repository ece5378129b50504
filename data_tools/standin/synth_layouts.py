"""mip-NeRF 360, NeRF Blender and LLFF stand-ins: the synthetic scenes written under the real names."""

import pathlib

from data_tools.synth import build_scene, write_scene

# layout -> (synthetic scene kind, the dataset's scene names)
KINDS = {
    '360_v2': ('unbounded360', ['bicycle', 'flowers', 'garden', 'stump', 'treehill',
                                'room', 'counter', 'kitchen', 'bonsai']),
    'nerf_synthetic': ('object360', ['chair', 'drums', 'ficus', 'hotdog', 'lego', 'materials', 'mic', 'ship']),
    'nerf_llff_data': ('forward', ['fern', 'flower', 'fortress', 'horns', 'leaves', 'orchids', 'room', 'trex']),
}


def scenes(layout):
    """The real scene names of the layout."""
    return list(KINDS[layout][1])


def write(layout, out, names, res=None, views=None):
    """Writes each named scene (a differently textured synthetic scene) to out/<name>; -> their folders."""
    kind, known = KINDS[layout]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f'{layout} has no scene {unknown}; its scenes: {known}')
    width, height = res or (None, None)
    return [write_scene(build_scene(kind, known.index(name), width, height, views), pathlib.Path(out) / name,
                        overwrite=True) for name in names]
