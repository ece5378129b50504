"""The paper's claim on multi-scale data: without integrated positional encoding ("w/o IPE", NeRF's
encoding of the samples' means) the model renders the low resolutions worse.

Both runs are demo.gin with the same steps, data and seeds (conftest's session fixtures: 200 steps
at lr 5e-3), trained on all four scales with the lossmult-weighted loss and scored by
`eval --scale 4` on 8 held-out views per scale.
"""

# Measured after the 200 steps, IPE minus no-IPE PSNR: 2.4 / 3.1 / 4.0 / 5.0 dB at full / 1/2 /
# 1/4 / 1/8 (mip-NeRF 17.8 / 19.2 / 21.3 / 23.8 dB, no-IPE 15.4 / 16.0 / 17.4 / 18.9 dB; after
# demo.gin's full 800 steps the gains were 3.6 / 4.9 / 5.3 / 2.5). Each bar keeps at least 0.8 dB
# of margin, and the three lower resolutions, where the claim is, at least 1.1 dB.
MIN_GAIN_DB = {"Full": 1.5, "1/2": 2.0, "1/4": 2.5, "1/8": 2.5}


def test_without_ipe_the_low_resolutions_are_worse(ipe_run, noipe_run):
    ipe = ipe_run["metrics"]["per_scale"]
    noipe = noipe_run["metrics"]["per_scale"]
    gains = {name: ipe[name]["psnr"] - noipe[name]["psnr"] for name in ipe}
    for label, per_scale in (("mip-NeRF", ipe), ("w/o IPE", noipe), ("gain", gains)):
        print(f"{label} PSNR per scale: { {k: round(v if label == 'gain' else v['psnr'], 2) for k, v in per_scale.items()} }")
    for name, bar in MIN_GAIN_DB.items():
        assert gains[name] >= bar, (name, gains)
