"""Refusal: non-MRI probes are rejected with a reason; phantoms and real MRI slices are not."""
from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from predict_helpers import encode, tiny_checkpoint, tiny_data
from probes import mri_like_bytes, probes, skimage_images
from tumorlens.checkpoint import load_checkpoint, read_metadata
from tumorlens.config import CLASSES
from tumorlens.readers import read_frames
from tumorlens.refusal import (HU_AIR_MIN, OOD_QUANTILE, FeatureOOD, check_header, check_image, finalize_checkpoint, fit_abstention,
                               image_stats)
from tumorlens.synthetic import _slice_rng, make_slice

KAGGLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain-tumor-mri-dataset"


@pytest.fixture(scope="module")
def probe_frames():
    out = []
    for name, data, fn in probes():
        for fr in read_frames(data, name=fn)[:2]:
            out.append((name, fr))
    return out


def test_every_probe_is_refused_by_header_or_statistics(probe_frames):
    assert len({n for n, _ in probe_frames}) >= 35
    passed = [name for name, fr in probe_frames if check_image(fr.gray, fr.info) is None]
    assert passed == []


def test_refusal_reasons_name_the_problem(probe_frames):
    reasons = {name: check_image(fr.gray, fr.info) for name, fr in probe_frames}
    assert reasons["black"] == "blank or constant image"
    assert "colour" in reasons["colour_scene"]
    assert "noise" in reasons["uniform_noise"]
    assert "Modality is CT" in reasons["pydicom_CT_small"]
    assert "Modality is US" in reasons["pydicom_examples_rgb_color"]
    assert "Modality is NM" in reasons["pydicom_JPEG2000"]
    assert "binary" in reasons["document"]
    assert "photograph" in reasons["photo_grace_hopper_gray"]


def test_phantoms_pass_the_statistics_at_all_sizes_and_codecs():
    for ci, label in enumerate(CLASSES):
        for i in range(6):
            for size in (128, 256, 512):
                img = make_slice(label, _slice_rng(5, ci, i), size)[0]
                assert check_image(img.astype(np.float32)) is None, (label, i, size, image_stats(img))
            (fr,) = read_frames(encode(img, "JPEG", quality=85), name="p.jpg", draft=256)
            assert check_image(fr.gray, fr.info) is None


def test_upside_down_head_slices_running_off_the_top_pass_the_statistics():
    """Half a head cut at the frame's edge, turned upside down (an upside-down sagittal slice's neck): its
    bright region runs off the top above a dark bottom edge, as a portrait's does, but it is a filled ellipse."""
    for ci, label in enumerate(CLASSES):
        for i in range(3):
            img = make_slice(label, _slice_rng(5, ci, i), 256)[0].astype(np.float32)
            cut = np.ascontiguousarray(img[:int(0.55 * 256)][::-1])
            s = image_stats(cut)
            assert s["border_top"] > 0.6 and s["border_bottom"] < 0.15  # what the portrait test looks for
            assert check_image(cut) is None, (label, i, s)


@pytest.mark.data
@pytest.mark.skipif(not KAGGLE.is_dir(), reason=f"Kaggle brain-tumour MRI set not found at {KAGGLE}")
def test_kaggle_mri_slices_flipped_or_turned_pass_the_statistics():
    paths = sorted(glob.glob(str(KAGGLE / "*" / "*" / "*.jpg")))[::40]  # all 7,023: benchmarks/robustness.py
    refused = []
    for p in paths:
        g = read_frames(p, draft=256)[0].gray
        for name, o in (("vflip", g[::-1]), ("rot180", g[::-1, ::-1]), ("rot90", np.rot90(g)), ("rot270", np.rot90(g, 3))):
            if check_image(np.ascontiguousarray(o)):
                refused.append((p, name))
    assert len(paths) > 150 and refused == []


def test_noisy_head_slices_pass_while_noise_of_any_size_is_refused():
    """White noise of 10% of the range on 512-px phantoms pushes some past the full-resolution noise limit;
    the 2 x 2-binned test keeps them, while noise images at 256-1024 px stay refused."""
    rng = np.random.default_rng(1)
    full_res_alone = []
    for ci, label in enumerate(CLASSES):
        for i in range(3):
            img = make_slice(label, _slice_rng(5, ci, i), 512)[0].astype(np.float32)
            noisy = np.clip(img + rng.normal(0, 0.1 * img.max(), img.shape), 0, None).astype(np.float32)
            s = image_stats(noisy)
            full_res_alone.append(s["noise_px"] > 0.92)
            assert check_image(noisy) is None, (label, i, s["noise_px"], s["noise"])
    assert sum(full_res_alone) >= 1  # the full-resolution test alone would have refused these
    for side in (256, 512, 1024):
        z = rng.normal(128, 40, (side, side)).clip(0, 255).astype(np.float32)
        assert "noise" in (check_image(z) or ""), side


def test_bundled_real_mri_passes():
    for name, data, fn in mri_like_bytes():
        (fr,) = read_frames(data, name=fn)
        assert check_image(fr.gray, fr.info) is None, name
    from pydicom.data import get_testdata_file

    (fr,) = read_frames(get_testdata_file("MR_small.dcm"))
    assert check_image(fr.gray, fr.info) is None


@pytest.mark.data
@pytest.mark.skipif(not KAGGLE.is_dir(), reason=f"Kaggle brain-tumour MRI set not found at {KAGGLE}")
def test_kaggle_mri_slices_are_rarely_refused_by_statistics():
    paths = sorted(glob.glob(str(KAGGLE / "*" / "*" / "*.jpg")))[::20]  # ~350 of 7,023 (all: benchmarks/)
    refused = [p for p in paths if check_image(*(lambda f: (f.gray, f.info))(read_frames(p, draft=256)[0]))]
    assert len(paths) > 300
    assert len(refused) <= 0.01 * len(paths), refused


def test_header_checks():
    assert "CT" in check_header({"modality": "CT"})
    assert "ultrasound" in check_header({"modality": "US"})
    assert check_header({"modality": "MR"}) is None
    assert check_header({"modality": "MR", "body_part": "HEAD"}) is None
    assert check_header({"modality": "MR", "body_part": "Brain"}) is None
    assert "CHEST" in check_header({"modality": "MR", "body_part": "CHEST"})
    assert check_header({}) is None


def test_a_dicom_description_naming_another_body_part_is_refused_when_no_body_part_tag_says_otherwise():
    shoulder = {"modality": "MR", "descriptions": {"StudyDescription": "SHOULDER"}}
    assert "names the shoulder" in check_header(shoulder) and "StudyDescription 'SHOULDER'" in check_header(shoulder)
    assert "names the spine" in check_header({"descriptions": {"SeriesDescription": "L-SPINE sag T2"}})
    # a word that names the head anywhere keeps it; the BodyPartExamined tag outranks free text
    assert check_header({"descriptions": {"StudyDescription": "MR SHOULDER", "SeriesDescription": "T1 AX BRAIN"}}) \
        is None
    assert check_header({"body_part": "HEAD", "descriptions": {"StudyDescription": "KNEE"}}) is None
    assert check_header({"descriptions": {"StudyDescription": "MR HEAD", "ProtocolName": "t2_tse_tra"}}) is None
    # a brain fMRI task or a CSF-flow study is not a hand or a heart
    assert check_header({"descriptions": {"SeriesDescription": "fMRI hand motor", "ProtocolName": "cardiac gated"}}) \
        is None
    # words, not substrings: HIPPOCAMPUS is not the hip, ABDUCENS not the abdomen
    assert check_header({"descriptions": {"SeriesDescription": "HIPPOCAMPUS cor T2", "ProtocolName": "ABDUCENS"}}) \
        is None


def test_localizers_and_parametric_maps_are_refused_by_their_image_type():
    assert "LOCALIZER" in check_header({"image_type": ["ORIGINAL", "PRIMARY", "LOCALIZER"]})
    assert "parametric map (ADC)" in check_header({"image_type": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]})
    assert check_header({"image_type": ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]}) is None
    assert check_header({"image_type": ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"]}) is None  # an image


def test_values_at_the_hounsfield_units_of_air_are_refused_as_ct():
    from tumorlens.readers import hu_air_share

    rng = np.random.default_rng(0)
    ct = np.full((64, 64), -1000.0) + rng.normal(0, 40, (64, 64))  # air with noise
    ct[16:48, 16:48] = rng.normal(40, 10, (32, 32))  # soft tissue
    assert hu_air_share(ct) > 0.5 and "a CT image" in check_header({"hu_air": hu_air_share(ct)})
    mri = np.clip(ct + 1000, 0, None)  # the same picture, non-negative as magnitude MRI is
    phase = rng.uniform(-4096, 4096, (64, 64))  # a phase image spreads over the whole range
    assert hu_air_share(mri) == 0.0 and hu_air_share(phase) < HU_AIR_MIN
    assert check_header({"hu_air": hu_air_share(phase)}) is None


def test_feature_ood_scores_and_compact_round_trip():
    rng = np.random.default_rng(0)
    d = 128
    means = rng.normal(0, 3, (4, d))
    y = np.repeat(np.arange(4), 300)
    f = means[y] + rng.normal(0, 1, (len(y), d)) * np.linspace(0.2, 2, d)
    ood = FeatureOOD.fit(f, y)
    fv = means[np.repeat(np.arange(4), 50)] + rng.normal(0, 1, (200, d)) * np.linspace(0.2, 2, d)
    sv = ood.score(fv)
    ood.threshold = float(np.quantile(sv, 0.995))
    far = rng.normal(0, 1, (50, d)) * 6
    assert np.all(ood.score(far) > ood.threshold)
    assert 0.5 < np.median(sv) < 2.0
    meta = ood.to_meta()
    assert len(json.dumps(meta)) < 150_000
    back = FeatureOOD.from_meta(json.loads(json.dumps(meta)))
    assert np.allclose(back.score(fv), sv, rtol=1e-3)


def test_finalize_is_idempotent_and_stores_abstention_and_refusal(tmp_path_factory):
    ck = tiny_checkpoint(tmp_path_factory.mktemp("ck"))
    m1 = read_metadata(ck)
    ab, ref = m1["abstention"], m1["refusal"]
    assert 0.9 - 1e-9 <= ab["coverage"] <= 1.0 and ab["fitted_on"] == "val"
    assert ref["ood"]["dim"] == 8 + 16 + 32 + 32 and ref["ood_quantile"] == OOD_QUANTILE == 0.998  # every block
    assert ref["ood"]["features"] == "mean-pooled ReLU output of every conv block (before the gate)"
    look = ref["lookalike"]  # fitted on the same features, against the negative images
    assert look["dim"] == ref["ood"]["dim"] and look["quantile"] == 0.999 and look["negatives"]["n"] > 0
    assert look["n_turned"] == look["n_augmented"] == 3 * ref["n_train"] and 0 <= look["val_refusal_rate"] <= 1
    X, y = tiny_data(24, 0)
    Xv, yv = tiny_data(8, 1)
    out = tmp_path_factory.mktemp("again") / "m.safetensors"
    finalize_checkpoint(ck, torch.from_numpy(X).unsqueeze(1), Xv, yv, y_train=y, out=out)
    assert read_metadata(out) == m1
    assert len(json.dumps(m1)) < 300_000
    assert "excluded" not in ref
    note = {"what": "CT slices", "list": "ct.csv", "train": 3, "val": 0}
    finalize_checkpoint(ck, torch.from_numpy(X).unsqueeze(1), Xv, yv, y_train=y, out=out, excluded=note)
    assert read_metadata(out)["refusal"]["excluded"] == note


def test_fit_abstention_rule_on_a_controlled_model(tmp_path_factory):
    ck = load_checkpoint(tiny_checkpoint(tmp_path_factory.mktemp("ck")))
    from tumorlens.predict import Predictor

    pr = Predictor(ck)
    Xv, yv = tiny_data(8, 1)
    probs = pr.probabilities(Xv)
    # with labels equal to the model's own answers, 99.5 % is reached at full coverage: capped at 95 %
    ab = fit_abstention(pr, Xv, probs.argmax(1))
    assert ab["coverage_at_target_accuracy"] == 1.0 and 0.95 <= ab["coverage"] < 1.0
    assert ab["accuracy"] == 1.0
    # with every label wrong, 99.5 % is out of reach: the coverage floor (90 %) applies
    ab = fit_abstention(pr, Xv, (probs.argmax(1) + 1) % 4)
    assert ab["coverage_at_target_accuracy"] == 0.0 and 0.9 <= ab["coverage"] < 0.95


def test_the_benchmark_strips_pydicom_test_files_to_distinct_pngs_named_by_modality():
    pytest.importorskip("pydicom")
    from conftest import load_benchmark

    out = load_benchmark("refusal_rates").stripped_dicom_pngs()
    names = [n for n, _ in out]
    assert "CT_small (CT)" in names and len(set(names)) == len(names)
    assert all(data.startswith(b"\x89PNG") for _, data in out)
    assert len({data for _, data in out}) == len(out)


def test_the_bundled_model_refuses_every_pydicom_test_image_saved_as_png_abdominal_mr_included():
    """No DICOM tag can help here: the statistics checks and the feature distance must refuse them all. At the
    99.8th percentile the skull-strip model answered the abdominal MR slice (examples_overlay) 'notumor' at 0.95
    (distance 1.309 against 1.311); refusal.OOD_QUANTILE was 0.995 since. The T2-rendering model is back at 0.998,
    where this slice sits at 1.89 against 1.33 (benchmarks/refusal_rates.md)."""
    pytest.importorskip("pydicom")
    from conftest import load_benchmark

    from tumorlens.predict import Predictor

    out = load_benchmark("refusal_rates").stripped_dicom_pngs()
    assert "examples_overlay (MR)" in [n for n, _ in out]
    pr = Predictor()
    for name, data in out:
        recs = pr.predict_bytes(data, f"{name}.png")
        assert [r.status for r in recs] == ["rejected"], (name, [(r.status, r.label, r.reason) for r in recs])


def test_the_bundled_model_refuses_every_image_bundled_with_scikit_image():
    """A probe set no limit was set on (photos, textures, text, microscopy, a retina, the Shepp-Logan phantom,
    grayscale copies of the colour ones). Grayscale photos pass the statistics and the closest sits 17% above
    the feature-distance threshold (1-2% with the model before; benchmarks/refusal_rates.md); the 14 x 25 GIF
    is refused by its size."""
    found = skimage_images()
    if not found:
        pytest.skip("scikit-image is not installed (pip install -e '.[test]' installs it)")
    from tumorlens.predict import Predictor

    pr = Predictor()
    got = {name: pr.predict_bytes(data, fn) for name, data, fn in found}
    assert len(got) >= 40
    answered = {n: [(r.status, r.label, r.reason) for r in recs] for n, recs in got.items()
                if any(r.status != "rejected" for r in recs)}
    assert answered == {}
    assert "too small for an MRI slice" in got["skimage_no_time_for_that_tiny"][0].reason


def test_a_distance_fitted_on_the_last_map_alone_scores_only_those_columns():
    from tumorlens.refusal import FEATURES_LAST_MAP, FeatureOOD

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 12))  # 8 early-block columns, then the last block's 4
    y = rng.integers(0, 2, 200)
    old = FeatureOOD.fit(feats[:, -4:], y, rank=2)
    old.threshold = 1.5
    meta = {**old.to_meta(), "features": FEATURES_LAST_MAP}  # as checkpoints finalized before the change
    back = FeatureOOD.from_meta(meta)
    assert back.last_only and not FeatureOOD.from_meta(old.to_meta()).last_only
    np.testing.assert_allclose(back.score(feats), old.score(feats[:, -4:]), rtol=1e-4)
