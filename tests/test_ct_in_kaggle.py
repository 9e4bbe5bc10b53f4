"""benchmarks/ct_in_kaggle.py: the skull-brightness statistic tells a CT-like slice (bright skull) from an
MRI-like one (dark bone between scalp and brain), on generated images and on known Kaggle CT slices."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import KAGGLE, load_benchmark, needs_kaggle

def _load():
    return load_benchmark("ct_in_kaggle")


def _head(tmp_path: Path, name: str, rings: list[tuple[float, float]]) -> str:
    """A 256-px disc head: (outer radius, value) rings drawn from the outside in, on black."""
    yy, xx = np.mgrid[:256, :256]
    r = np.hypot(yy - 128, xx - 128)
    img = np.zeros((256, 256), np.float32)
    for radius, value in rings:
        img[r <= radius] = value
    img[(r < 40) & (np.abs(xx - 128) < 6)] = 30  # a ventricle: a hole the head mask must fill
    path = tmp_path / f"{name}.png"
    Image.fromarray(img.astype(np.uint8)).save(path)
    return str(path)


def test_fill_holes_fills_enclosed_background_only():
    m = np.zeros((12, 12), bool)
    m[2:9, 2:9] = True
    m[5, 5] = False  # enclosed: filled
    m[0:2, 10] = True  # a separate speck; the background around it stays background
    out = _load()._fill_holes(m)
    assert out[5, 5] and out.sum() == m.sum() + 1 and not out[0, 0]


def test_a_bright_skull_scores_as_ct_and_a_dark_bone_band_as_mri(tmp_path):
    ct = _load().ct_stats(_head(tmp_path, "ct", [(100, 250), (88, 110)]))  # thick bright skull, grey brain
    mri = _load().ct_stats(_head(tmp_path, "mri", [(100, 200), (96, 15), (88, 120)]))  # fat, dark bone, brain
    assert ct["ct_score"] >= _load().CUT > mri["ct_score"]
    assert ct["bright_band"] > 0.5 and mri["dark_gap"] > 0.2


@needs_kaggle()
@pytest.mark.parametrize("name, is_ct", [("Testing/notumor/Te-no_0012.jpg", True),
                                         ("Training/notumor/Tr-no_0233.jpg", True),
                                         ("Training/meningioma/Tr-me_0286.jpg", False),
                                         ("Testing/glioma/Te-gl_0010.jpg", False)])
def test_known_kaggle_ct_slices_are_listed_and_mri_slices_are_not(name, is_ct):
    mod = _load()
    assert (mod.ct_stats(str(KAGGLE / name))["ct_score"] >= mod.CUT) is is_ct


@needs_kaggle()
def test_the_ct_list_names_existing_slices_by_content_and_the_bundled_model_refuses_them():
    from tumorlens.data import file_sha256
    from tumorlens.predict import Predictor

    mod = _load()
    listed = mod.read_list()
    assert set(mod.BY_EYE) <= set(listed) and len(listed) >= 70
    for rel, sha in list(listed.items())[:3] + [(k, v) for k, v in listed.items() if k in mod.BY_EYE][:3]:
        assert file_sha256(KAGGLE / rel) == sha
    for rel in mod.BY_EYE[:4]:  # the CT with a bright lesion: missed by the statistic, hence listed by eye
        assert mod.ct_stats(str(KAGGLE / rel))["ct_score"] < mod.CUT
    pr = Predictor()
    names = sorted(listed)
    recs = list(pr.predict_paths([str(KAGGLE / r) for r in names], workers=0))
    refused = sum(r.status == "rejected" for r in recs)
    # fitted without them, the feature distance refuses most (fitted with them, it refused 5 of 74): 66 of the 74
    # listed when the bundled model was built (its threshold is the 99.8th percentile; 71 for the model before it,
    # at the 99.5th). The 9 slices listed since were in its fit as MRI, so it answers them: 66 of 83 now. Every
    # slice it answers lies on its train or val side; all 18 in its test part are refused
    # (benchmarks/ct_in_kaggle.md)
    assert refused >= 0.75 * len(recs), f"only {refused} of {len(recs)} Kaggle CT slices refused"
    test = {row[0] for row in pr.ckpt.split_rows("test")}
    held_out = [r for n, r in zip(names, recs) if n in test]
    assert len(held_out) >= 18 and all(r.status == "rejected" for r in held_out)
