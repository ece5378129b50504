"""The paper's claim on multi-scale data: without integrated positional encoding ("w/o IPE", NeRF's
encoding of the samples' means) the model renders the low resolutions worse.

Both runs are demo.gin with the same steps, data and seeds (conftest's session fixtures: 200 steps
at lr 5e-3), trained on all four scales with the lossmult-weighted loss and scored by
`eval --scale 4` on 8 held-out views per scale.
"""

# Measured after the 200 steps, IPE minus no-IPE PSNR: 2.3 / 3.1 / 3.9 / 4.7 dB at full / 1/2 /
# 1/4 / 1/8 (mip-NeRF 17.8 / 19.2 / 21.4 / 23.6 dB, no-IPE 15.5 / 16.1 / 17.5 / 18.9 dB; after
# demo.gin's full 800 steps the gains were 3.4 / 4.8 / 5.4 / 2.7). Each bar keeps at least 0.8 dB
# of margin, and the three lower resolutions, where the claim is, at least 1.1 dB.
MIN_GAIN_DB = {"Full": 1.5, "1/2": 2.0, "1/4": 2.5, "1/8": 2.5}


def test_without_ipe_the_low_resolutions_are_worse(ipe_run, noipe_run):
    ipe = ipe_run["metrics"]["per_scale"]
    noipe = noipe_run["metrics"]["per_scale"]
    gains = {name: ipe[name]["psnr"] - noipe[name]["psnr"] for name in ipe}
    print(f"PSNR gain of IPE over PE per scale: { {k: round(v, 2) for k, v in gains.items()} }")
    for name, bar in MIN_GAIN_DB.items():
        assert gains[name] >= bar, (name, gains)
