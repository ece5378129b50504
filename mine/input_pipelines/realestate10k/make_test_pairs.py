"""Seeded RealEstate10K evaluation pairs in the format of the release's `test_data_jsons/*.json`.

    python -m mine.input_pipelines.realestate10k.make_test_pairs ROOT OUT.json
        [--sequences 0] [--sources_per_sequence 5] [--random_range 30] [--seed 0]

MINE's paper table uses the release's `test_pairs.json`, which is in the release's git history but
not in the snapshot this port was made from. Pass that file to `mine.eval` when you have it. Without
it, this script makes a stand-in by the rule its shipped `validation_pairs.json` follows (50 sequences,
5 source frames each): a source frame, the frames 5 and 10 later, and a frame at a random offset in
[-random_range, random_range] (not 0). Every draw is seeded by (seed, sequence id), so the same
camera files always give the same pairs.

ROOT holds `cameras/<sequence_id>.txt` of the test split (the release's camera files). Each JSON line
names its frames by timestamp; extract those frames to `ROOT/frames/<sequence_id>/<timestamp>.png`
before evaluating. `--sequences N` keeps N sequences chosen by the seed (0: all).
"""

import argparse
import glob
import json
import os
import random

from mine.input_pipelines.realestate10k.realestate10k_dataset import PAIR_KEYS, read_camera_file

TARGET_OFFSETS = {"5": 5, "10": 10}


def frame_object(seq, timestamp, intrinsics, pose):
    """One frame in the pairs-file format (normalised intrinsics, 3x4 world-to-camera row-major)."""
    return {"sequence_id": seq, "camera_intrinsics": intrinsics, "camera_pose": pose, "frame_ts": timestamp}


def sequence_pairs(seq, frames, sources_per_sequence, random_range, seed):
    """Pairs of one sequence: frames [(timestamp, intrinsics, pose)] in time order -> list of JSON objects."""
    rng = random.Random(f"{seed}:{seq}")
    last_source = len(frames) - 1 - max(TARGET_OFFSETS.values())
    if last_source < 0:
        return []
    sources = sorted(rng.sample(range(last_source + 1), min(sources_per_sequence, last_source + 1)))
    pairs = []
    for src in sources:
        offsets = [o for o in range(-random_range, random_range + 1) if o != 0 and 0 <= src + o < len(frames)]
        targets = dict(TARGET_OFFSETS, random=rng.choice(offsets))
        obj = {"sequence_id": seq, "src_img_obj": frame_object(seq, *frames[src])}
        for name, offset in targets.items():
            obj[PAIR_KEYS[name]] = frame_object(seq, *frames[src + offset])
        pairs.append(obj)
    return pairs


def make_test_pairs(root, sequences=0, sources_per_sequence=5, random_range=30, seed=0):
    """Pairs of the camera files in root/cameras: -> list of JSON objects, sequences in sorted order."""
    camera_files = sorted(glob.glob(os.path.join(root, "cameras", "*.txt")))
    if not camera_files:
        raise FileNotFoundError(f"no camera files in {os.path.join(root, 'cameras')} "
                                f"(expected cameras/<sequence_id>.txt of the RealEstate10K test split)")
    if sequences:
        camera_files = sorted(random.Random(seed).sample(camera_files, min(sequences, len(camera_files))))
    pairs = []
    for path in camera_files:
        seq = os.path.splitext(os.path.basename(path))[0]
        frames = [(ts, intr, pose) for ts, (intr, pose) in sorted(read_camera_file(path).items(), key=lambda kv: int(kv[0]))]
        pairs += sequence_pairs(seq, frames, sources_per_sequence, random_range, seed)
    return pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description="seeded RealEstate10K evaluation pairs (JSON lines)")
    parser.add_argument("root", help="folder holding cameras/<sequence_id>.txt of the test split")
    parser.add_argument("out", help="JSON-lines file to write")
    parser.add_argument("--sequences", type=int, default=0, help="keep this many sequences (0: all)")
    parser.add_argument("--sources_per_sequence", type=int, default=5)
    parser.add_argument("--random_range", type=int, default=30, help="the random target is within this many frames")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pairs = make_test_pairs(args.root, args.sequences, args.sources_per_sequence, args.random_range, args.seed)
    with open(args.out, "w") as f:
        f.writelines(json.dumps(p) + "\n" for p in pairs)
    print(f"wrote {len(pairs)} pairs of {len({p['sequence_id'] for p in pairs})} sequences to {args.out}")


if __name__ == "__main__":
    main()
