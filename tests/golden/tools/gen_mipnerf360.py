"""Writes golden cases for mipnerf360 by running the ORIGINAL multinerf (JAX) on seeded inputs.

It imports `internal.coord` and `internal.ref_utils` from the multinerf tree named by --original
(google-research/multinerf, a plain checkout or `git archive` of the commit given by --commit), calls
them on CPU on seeded inputs, and writes one .npz per case into --out, replacing (never duplicating)
the manifest entries of the same case names in --out/manifest.json.

Cases made here (issue 17, point 2):
  coord.construct_ray_warps  every fn its callers can bind (None, 'piecewise', jnp.reciprocal, log,
                             sqrt, exp, square), near/far of the configs, other batch shapes;
  coord.track_linearize      fn = contract and inv_contract, other batch shapes;
  ref_utils.generate_ide_fn / generate_dir_enc_fn  deg_view 1..5, other batch shapes;
  coord.lift_and_diagonalize  one Gaussian alone (unbatched) and other bases;
  what they call (contract, inv_contract, expected_sin, integrated_pos_enc, pos_enc, get_ml_array,
  reflect, l2_normalize): other shapes, degrees and edge values.

A function-valued argument is stored in `static` by name, as the existing cases do: null for None,
'piecewise', the jnp function's name ('reciprocal', 'log', ...) or the coord function's name
('contract', 'inv_contract').

Needs jax and numpy (not torch), e.g.
  python3 -m venv /tmp/venv_jax && /tmp/venv_jax/bin/pip install jax jaxlib numpy
  /tmp/venv_jax/bin/python tests/golden/tools/gen_mipnerf360.py --original /tmp/orig_multinerf \
      --out tests/golden/mipnerf360
"""

import argparse
import json
import pathlib
import sys

import numpy as np

COMMIT = "5b4d4f64608ec8077222c52fdf814d40acc10bc1"
PORT = "mipnerf360.internal"


def _f32(x):
    return np.asarray(x, dtype=np.float32)


class Writer:
    """Collects cases: writes each .npz and keeps its manifest entry."""

    def __init__(self, out, commit):
        self.out = pathlib.Path(out)
        self.commit = commit
        self.entries = []

    def add(self, case, module, function, args, static, inputs, outputs, rtol, atol, notes):
        arrays = {f"in_{k}": v for k, v in inputs.items()}
        arrays.update({f"out_{k}": v if np.asarray(v).dtype.kind in "iu" else _f32(v)
                       for k, v in outputs.items()})
        np.savez_compressed(self.out / f"{case}.npz", **arrays)
        self.entries.append({
            "case": f"{case}.npz",
            "function": f"{PORT}.{module}:{function}",
            "reference": f"google-research/multinerf@{self.commit}:internal/{module}.py:{function}",
            "args": args,
            "static": static,
            "outputs": list(outputs),
            "rtol": rtol,
            "atol": atol,
            "notes": notes,
        })

    def write_manifest(self):
        path = self.out / "manifest.json"
        manifest = json.loads(path.read_text()) if path.exists() else []
        new = {e["case"] for e in self.entries}
        manifest = [e for e in manifest if e["case"] not in new] + self.entries
        path.write_text(json.dumps(manifest, indent=1) + "\n")


def _shape_name(shape):
    return "x".join(str(s) for s in shape) if shape else "unbatched"


# --- coord.construct_ray_warps ----------------------------------------------------------------

# (fn name, batch shape, samples per ray, near range, far range, rtol, atol). near/far: 360.gin and
# tat.gin (0.2 / 0.1, 1e6), blender (2, 6), llff (0, 1, only with None or 'piecewise'), and random.
RAY_WARPS = [
    (None, (6,), 11, (0.0, 0.0), (1.0, 1.0), 1e-5, 1e-6),
    (None, (2, 3, 5), 8, (2.0, 2.0), (6.0, 6.0), 1e-5, 1e-6),
    ("piecewise", (6,), 11, (0.0, 0.0), (1.0, 1.0), 1e-5, 1e-6),
    ("piecewise", (2, 3, 5), 8, (0.05, 0.5), (2.0, 1e3), 1e-5, 1e-6),
    ("reciprocal", (6,), 11, (0.2, 0.2), (1e6, 1e6), 1e-5, 1e-6),
    ("reciprocal", (2, 3, 5), 8, (2.0, 2.0), (6.0, 6.0), 1e-5, 1e-6),
    ("reciprocal", (3, 4), 16, (0.1, 0.1), (1e6, 1e6), 1e-5, 1e-6),
    ("log", (6,), 11, (0.2, 0.2), (1e6, 1e6), 1e-5, 1e-6),
    ("log", (2, 3, 5), 8, (0.05, 0.5), (2.0, 20.0), 1e-5, 1e-6),
    ("log", (3, 4), 16, (2.0, 2.0), (6.0, 6.0), 1e-5, 1e-6),
    ("sqrt", (6,), 11, (0.2, 0.2), (1e6, 1e6), 1e-5, 1e-6),
    ("sqrt", (2, 3, 5), 8, (0.05, 0.5), (2.0, 20.0), 1e-5, 1e-6),
    ("sqrt", (3, 4), 16, (0.0, 0.0), (1.0, 1.0), 1e-5, 1e-6),
    ("exp", (6,), 11, (2.0, 2.0), (6.0, 6.0), 1e-5, 1e-6),
    ("exp", (2, 3, 5), 8, (0.0, 0.5), (1.0, 3.0), 1e-5, 1e-6),
    ("square", (6,), 11, (2.0, 2.0), (6.0, 6.0), 1e-5, 1e-6),
    ("square", (2, 3, 5), 8, (0.0, 0.5), (1.0, 20.0), 1e-5, 1e-6),
    ("reciprocal", (), 7, (0.2, 0.2), (1e6, 1e6), 1e-5, 1e-6),  # One ray: t_near [1], t [n].
    ("log", (), 7, (0.5, 0.5), (100.0, 100.0), 1e-5, 1e-6),
]


def gen_construct_ray_warps(w, coord, jnp, seed):
    for i, (fn_name, batch, n, near_range, far_range, rtol, atol) in enumerate(RAY_WARPS):
        rng = np.random.default_rng(seed + i)
        t_near = _f32(rng.uniform(*near_range, size=batch + (1,)))
        t_far = _f32(rng.uniform(*far_range, size=batch + (1,)))
        # Distances inside [near, far], log-spaced when the range is wide, plus both ends.
        u = np.sort(rng.uniform(size=batch + (n,)), axis=-1)
        u[..., 0], u[..., -1] = 0.0, 1.0
        if near_range[0] > 0 and far_range[0] / near_range[1] > 1e3:
            t = _f32(np.exp(np.log(t_near) + u * (np.log(t_far) - np.log(t_near))))
        else:
            t = _f32(t_near + u * (t_far - t_near))
        s = np.sort(rng.uniform(size=batch + (n,)), axis=-1)
        s[..., 0], s[..., -1] = 0.0, 1.0
        s = _f32(s)
        fn = fn_name if fn_name in (None, "piecewise") else getattr(jnp, fn_name)
        t_to_s, s_to_t = coord.construct_ray_warps(fn, jnp.asarray(t_near), jnp.asarray(t_far))
        outputs = {"t_to_s": np.asarray(t_to_s(jnp.asarray(t))),
                   "s_to_t": np.asarray(s_to_t(jnp.asarray(s)))}
        for k, v in outputs.items():
            assert np.all(np.isfinite(v)), (fn_name, k)
        w.add(
            f"coord_construct_ray_warps_{fn_name}_{_shape_name(batch + (n,))}",
            "coord", "construct_ray_warps", ["t_near", "t_far", "t", "s"], {"fn": fn_name},
            {"t_near": t_near, "t_far": t_far, "t": t, "s": s}, outputs, rtol, atol,
            "t_to_s, s_to_t = construct_ray_warps(fn, t_near, t_far); out_t_to_s = t_to_s(in_t), "
            "out_s_to_t = s_to_t(in_s). static fn names the warp: null = None, 'piecewise', or the "
            f"name of the jnp function (jnp.{fn_name} -> torch.{fn_name}), whose inverse the port "
            "finds by __name__. t spans [t_near, t_far] with both ends, s spans [0, 1] with both ends. "
            f"near in {list(near_range)}, far in {list(far_range)}.",
        )


# --- coord.track_linearize --------------------------------------------------------------------

# (fn name, batch shape, radius range of the means). contract: points inside and far outside the
# unit ball (and the origin); inv_contract: its domain |z| < 2, inside and outside the unit ball.
TRACK_LINEARIZE = [
    ("contract", (7,), (0.0, 300.0)),
    ("contract", (2, 3, 4), (0.0, 50.0)),
    ("inv_contract", (12,), (0.0, 1.95)),
    ("inv_contract", (2, 3, 4), (0.0, 1.9)),
    ("inv_contract", (4, 1, 5), (0.5, 1.5)),
    ("contract", (), (3.0, 3.0)),  # One Gaussian: mean [3], cov [3, 3].
    ("inv_contract", (), (1.5, 1.5)),
]


def gen_track_linearize(w, coord, jnp, seed):
    for i, (fn_name, batch, (r_lo, r_hi)) in enumerate(TRACK_LINEARIZE):
        rng = np.random.default_rng(seed + i)
        direction = rng.normal(size=batch + (3,))
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        if r_hi > 10:  # Log-uniform radii: as many near the unit sphere as far away.
            radius = np.exp(rng.uniform(np.log(0.05), np.log(r_hi), size=batch + (1,)))
        else:
            radius = rng.uniform(r_lo, r_hi, size=batch + (1,))
        mean = direction * radius
        if r_lo == 0.0:
            mean.reshape(-1, 3)[0] = 0.0  # The origin: the eps clamp's point.
        a = rng.normal(size=batch + (3, 3)) * (0.05 + 0.2 * radius[..., None])
        cov = a @ np.swapaxes(a, -1, -2)
        mean, cov = _f32(mean), _f32(cov)
        fn = getattr(coord, fn_name)
        fn_mean, fn_cov = coord.track_linearize(fn, jnp.asarray(mean), jnp.asarray(cov))
        outputs = {"fn_mean": np.asarray(fn_mean), "fn_cov": np.asarray(fn_cov)}
        w.add(
            f"coord_track_linearize_{fn_name}_{_shape_name(batch)}",
            "coord", "track_linearize", ["mean", "cov"], {"fn": fn_name},
            {"mean": mean, "cov": cov}, outputs, 1e-5, 1e-6,
            f"static fn names the warp: '{fn_name}' = coord.{fn_name}. fn_cov = J cov J^T with J the "
            "Jacobian of fn at mean (jax.linearize). Means at radii "
            f"[{r_lo}, {r_hi}] (the first one the origin when 0 is included).",
        )


# --- coord.lift_and_diagonalize ----------------------------------------------------------------

# (batch shape, basis shape, subdivisions): the MLP's icosahedron-2 basis and another one.
LIFT_AND_DIAGONALIZE = [((), "icosahedron", 2), ((6,), "octahedron", 1), ((2, 1, 3), "icosahedron", 1)]


def gen_lift_and_diagonalize(w, coord, geopoly, jnp, seed):
    for i, (batch, shape, subdivisions) in enumerate(LIFT_AND_DIAGONALIZE):
        rng = np.random.default_rng(seed + i)
        mean = _f32(rng.normal(size=batch + (3,)) * 2)
        a = rng.normal(size=batch + (3, 3)) * 0.3
        cov = _f32(a @ np.swapaxes(a, -1, -2))
        basis = _f32(geopoly.generate_basis(shape, subdivisions).T)
        fn_mean, fn_cov_diag = coord.lift_and_diagonalize(
            jnp.asarray(mean), jnp.asarray(cov), jnp.asarray(basis))
        w.add(
            f"coord_lift_and_diagonalize_{shape}{subdivisions}_{_shape_name(batch)}",
            "coord", "lift_and_diagonalize", ["mean", "cov", "basis"], {},
            {"mean": mean, "cov": cov, "basis": basis},
            {"fn_mean": np.asarray(fn_mean), "fn_cov_diag": np.asarray(fn_cov_diag)}, 1e-5, 1e-6,
            f"basis = generate_basis('{shape}', {subdivisions}).T, shape {list(basis.shape)}; "
            f"mean {list(mean.shape)} (a single Gaussian when unbatched).",
        )


# --- ref_utils.generate_ide_fn / generate_dir_enc_fn --------------------------------------------

ENCODING_SHAPES = {1: (13,), 2: (2, 3, 4), 3: (5, 7), 4: (3, 1, 6), 5: (17,)}
UNBATCHED_DEGREES = (2, 4)  # Also one direction, xyz [3] and kappa_inv [1].
# Tolerances: the z part of every harmonic is sum_k c_k z^k with |c_k| up to 109 (deg 4) and 9.0e4
# (deg 5, l = 16) of alternating sign, so its float32 value depends on the summation order: the
# rounding bound 2^-24 sum_k |c_k| |z|^k reaches 1.4e-5 (deg 4) and 1.7e-2 (deg 5) at |z| = 1.
# Measured (port, torch 2.13 CPU, vs the original, jax 0.10.2 CPU): deg 4 5.1e-6, deg 5 4.4e-3; the
# original itself vs float64 1.6e-3 (deg 5), and against its own deg-5 output of another jax version
# (ref_utils_ide_deg5.npz) 1.0e-3. Degrees 1-3 agree to 5e-7.
ENCODING_TOL = {1: (1e-5, 1e-6), 2: (1e-5, 1e-6), 3: (1e-5, 1e-6), 4: (1e-5, 2e-5), 5: (1e-5, 1e-2)}
ENCODING_TOL_NOTE = {
    4: " atol 2e-5: the degree-8 z polynomial (|c_k| up to 109) in float32 has a rounding bound "
       "2^-24 sum|c_k||z|^k of 1.4e-5; measured port vs original 5.1e-6.",
    5: " atol 1e-2: the degree-16 z polynomial (|c_k| up to 9.0e4, alternating) in float32 has a "
       "rounding bound 2^-24 sum|c_k||z|^k of 1.7e-2 and depends on the summation order; measured "
       "port vs original 4.4e-3, original vs float64 1.6e-3, original vs itself under another jax "
       "version 1.0e-3.",
}


def _unit_dirs(rng, batch):
    xyz = rng.normal(size=batch + (3,))
    xyz /= np.linalg.norm(xyz, axis=-1, keepdims=True)
    flat = xyz.reshape(-1, 3)
    # The poles and the equator: z^k or (x + iy)^m at their extremes.
    edges = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [0, -1, 0], [0.6, 0.8, 0]], dtype=np.float64)
    if len(flat) > 1:  # (One direction alone stays random.)
        flat[: min(len(edges), len(flat))] = edges[: len(flat)]
    return _f32(xyz)


def gen_encodings(w, ref_utils, jnp, seed):
    cases = [(d, ENCODING_SHAPES[d]) for d in range(1, 6)] + [(d, ()) for d in UNBATCHED_DEGREES]
    for deg_view, batch in cases:
        rtol, atol = ENCODING_TOL[deg_view]
        rng = np.random.default_rng(seed + deg_view + (50 if not batch else 0))
        xyz = _unit_dirs(rng, batch)
        # kappa_inv is the roughness, softplus(raw - 1) in the MLP: 0 (mirror) up to a few.
        kappa_inv = _f32(np.exp(rng.uniform(np.log(1e-3), np.log(3.0), size=batch + (1,))))
        if batch:
            kappa_inv.reshape(-1)[0] = 0.0
        ide = ref_utils.generate_ide_fn(deg_view)(jnp.asarray(xyz), jnp.asarray(kappa_inv))
        w.add(
            f"ref_utils_ide_deg{deg_view}_{_shape_name(batch)}",
            "ref_utils", "generate_ide_fn", ["xyz", "kappa_inv"], {"deg_view": deg_view},
            {"xyz": xyz, "kappa_inv": kappa_inv}, {"ide": np.asarray(ide)}, rtol, atol,
            "Call generate_ide_fn(deg_view)(xyz, kappa_inv). Output is [real parts, imag parts] "
            "concatenated. xyz unit directions (the poles and the equator among them), kappa_inv in "
            "{0} and [1e-3, 3]." + ENCODING_TOL_NOTE.get(deg_view, ""),
        )
        xyz = _unit_dirs(np.random.default_rng(seed + 100 + deg_view + (50 if not batch else 0)), batch)
        de = ref_utils.generate_dir_enc_fn(deg_view)(jnp.asarray(xyz))
        w.add(
            f"ref_utils_dir_enc_deg{deg_view}_{_shape_name(batch)}",
            "ref_utils", "generate_dir_enc_fn", ["xyz"], {"deg_view": deg_view},
            {"xyz": xyz}, {"de": np.asarray(de)}, rtol, atol,
            "Call generate_dir_enc_fn(deg_view)(xyz). Output is [real parts, imag parts] "
            "concatenated. xyz unit directions (the poles and the equator among them)."
            + ENCODING_TOL_NOTE.get(deg_view, ""),
        )


# --- plain calls of what the functions above call: other shapes, degrees and edge values ---------


def _plain_cases(rng):
    """(case, module, function, {arg: array}, static, output names, rtol, atol, notes)."""
    unit = lambda shape: (lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True))(
        rng.normal(size=shape + (3,)))
    x_big = rng.normal(size=(4, 5, 3)) * np.exp(rng.uniform(-3, 5, size=(4, 5, 1)))
    x_big[0, 0] = 0.0  # The origin: the eps clamp.
    z_ball = unit((4, 5)) * rng.uniform(0, 1.99, size=(4, 5, 1))
    z_ball[0, 0] = 0.0
    ipe_mean = rng.normal(size=(5, 21)) * 1.5  # Lifted means of contracted points: |x| < 2.
    ipe_var = np.exp(rng.uniform(-12, 0, size=(5, 21)))
    yield ("coord_contract_4x5", "coord", "contract", {"x": x_big}, {}, ["z"], 1e-5, 1e-6,
           "Radii from 0 (the origin, the eps clamp) to ~1e4.")
    yield ("coord_contract_unbatched", "coord", "contract", {"x": np.array([3.0, -1.0, 0.5])}, {},
           ["z"], 1e-5, 1e-6, "One point, x [3].")
    yield ("coord_inv_contract_4x5", "coord", "inv_contract", {"z": z_ball}, {}, ["x"], 1e-5, 1e-6,
           "Radii in [0, 1.99) (the origin among them).")
    yield ("coord_expected_sin_4x5_big", "coord", "expected_sin",
           {"mean": rng.normal(size=(4, 5)) * 2e3, "var": np.exp(rng.uniform(-12, 2, size=(4, 5)))},
           {}, ["y"], 1e-5, 1e-6, "Means up to ~8e3: safe_sin reduces |x| >= 100 pi modulo 100 pi.")
    yield ("coord_integrated_pos_enc_2_8_5x21", "coord", "integrated_pos_enc",
           {"mean": ipe_mean, "var": ipe_var}, {"min_deg": 2, "max_deg": 8}, ["encoded"],
           1e-5, 1e-6, "min_deg > 0.")
    yield ("coord_integrated_pos_enc_0_12_unbatched", "coord", "integrated_pos_enc",
           {"mean": ipe_mean[0], "var": ipe_var[0]}, {"min_deg": 0, "max_deg": 12}, ["encoded"],
           1e-5, 1e-6, "One Gaussian, mean/var [21] (the MLP's lifted icosahedron-2 basis).")
    yield ("coord_pos_enc_0_4_id_unbatched", "coord", "pos_enc", {"x": unit(())},
           {"min_deg": 0, "max_deg": 4, "append_identity": True}, ["encoded"], 1e-5, 1e-6,
           "One view direction, x [3]: the MLP's view-direction encoding for deg_view 4.")
    yield ("coord_pos_enc_2_6_2x3x3", "coord", "pos_enc", {"x": rng.normal(size=(2, 3, 3))},
           {"min_deg": 2, "max_deg": 6, "append_identity": False}, ["encoded"], 1e-5, 1e-6,
           "min_deg > 0, no identity.")
    for deg_view in range(1, 5):
        yield (f"ref_utils_get_ml_array_deg{deg_view}", "ref_utils", "get_ml_array", {},
               {"deg_view": deg_view}, ["ml_array"], 0, 0, "Integer output, compared exactly.")
    normals = unit((3, 4))
    yield ("ref_utils_reflect_3x4", "ref_utils", "reflect",
           {"viewdirs": unit((3, 4)), "normals": normals}, {}, ["refdirs"], 1e-5, 1e-6, "")
    yield ("ref_utils_reflect_unbatched", "ref_utils", "reflect",
           {"viewdirs": unit(()), "normals": unit(())}, {}, ["refdirs"], 1e-5, 1e-6, "x [3].")
    x = rng.normal(size=(3, 4, 3)) * np.exp(rng.uniform(-5, 5, size=(3, 4, 1)))
    x[0, 0] = 0.0
    yield ("ref_utils_l2_normalize_3x4", "ref_utils", "l2_normalize", {"x": x}, {}, ["y"],
           1e-5, 1e-6, "Norms from 0 (the zero vector: the eps clamp) to ~1e2.")


def gen_plain(w, modules, seed):
    rng = np.random.default_rng(seed)
    for case, module, function, inputs, static, outputs, rtol, atol, notes in _plain_cases(rng):
        inputs = {k: _f32(v) for k, v in inputs.items()}
        fn = getattr(modules[module], function)
        result = fn(*[modules["jnp"].asarray(v) for v in inputs.values()], **static)
        result = result if isinstance(result, tuple) else (result,)
        outs = {}
        for name, value in zip(outputs, result):
            value = np.asarray(value)
            outs[name] = value if value.dtype.kind in "iu" else _f32(value)
        w.add(case, module, function, list(inputs), static, inputs, outs, rtol, atol, notes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", required=True, help="multinerf tree (holds internal/coord.py)")
    parser.add_argument("--out", default="tests/golden/mipnerf360")
    parser.add_argument("--commit", default=COMMIT, help="the multinerf commit of --original")
    parser.add_argument("--seed", type=int, default=360)
    args = parser.parse_args()

    original = pathlib.Path(args.original).resolve()
    if not (original / "internal" / "coord.py").is_file():
        sys.exit(f"{original}/internal/coord.py not found: --original must be a multinerf tree")
    sys.path.insert(0, str(original))
    if not hasattr(np, "math"):  # multinerf calls np.math.factorial, gone from numpy >= 2.
        import math

        np.math = math
    import jax

    jax.config.update("jax_platform_name", "cpu")
    import jax.numpy as jnp
    from internal import coord, geopoly, ref_utils

    w = Writer(args.out, args.commit)
    gen_construct_ray_warps(w, coord, jnp, args.seed)
    gen_track_linearize(w, coord, jnp, args.seed + 1000)
    gen_encodings(w, ref_utils, jnp, args.seed + 2000)
    gen_lift_and_diagonalize(w, coord, geopoly, jnp, args.seed + 3000)
    gen_plain(w, {"coord": coord, "ref_utils": ref_utils, "jnp": jnp}, args.seed + 4000)
    w.write_manifest()
    print(f"wrote {len(w.entries)} cases to {args.out}")


if __name__ == "__main__":
    main()
