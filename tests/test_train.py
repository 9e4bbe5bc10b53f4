"""Training: a tiny model overfits, runs are deterministic, an interrupted run resumes to the same weights."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tumorlens.checkpoint import load_checkpoint, read_metadata
from tumorlens.config import ModelConfig, TrainConfig, TumorlensError
from tumorlens.synthetic import make_arrays
from tumorlens.train import SplitData, _mix, check_run_dir, train

TINY = TrainConfig(epochs=3, batch_size=16, lr=3e-3, patience=10, threads=1,
                   model=ModelConfig(channels=(8, 16, 16, 32), lstm_hidden=16, dense=16))


def stop_after_first(row):
    """on_epoch hook that interrupts a run after its first epoch, as Ctrl-C would."""
    if row["epoch"] == 1:
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def data():
    x, y, _ = make_arrays(12, size=64, seed=0)
    t = torch.from_numpy(x).unsqueeze(1)
    yt = torch.from_numpy(y)
    idx = np.arange(len(y))
    tr, va = idx % 4 != 0, idx % 4 == 0
    return (SplitData(t[tr], yt[tr], [f"i{i}" for i in idx[tr]]),
            SplitData(t[va], yt[va], [f"i{i}" for i in idx[va]]))


@pytest.fixture(scope="module")
def masked_data():
    """Phantoms with their tumour masks (train) and every third of them (val)."""
    x, y, masks = make_arrays(6, size=64, seed=2)
    t = torch.from_numpy(x).unsqueeze(1)
    mk = torch.from_numpy(masks.astype(np.float32)).unsqueeze(1)
    tr = SplitData(t, torch.from_numpy(y), [], mk, torch.ones(len(y), dtype=torch.bool))
    va = SplitData(t[::3], torch.from_numpy(y)[::3], [])
    return tr, va


def test_tiny_model_overfits_a_small_batch(tmp_path):
    x, y, _ = make_arrays(4, size=64, seed=1)
    d = SplitData(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y), [str(i) for i in range(len(y))])
    cfg = TINY.with_overrides(["epochs=60", "batch_size=16", "augment=false", "model.dropout=0.0",
                               "label_smoothing=0.0", "warmup_epochs=0"])
    ckpt = train(cfg, d, SplitData(d.x[:0], d.y[:0], []), tmp_path / "run")
    m = load_checkpoint(ckpt).model
    with torch.no_grad():
        acc = (m(d.x).argmax(1) == d.y).float().mean().item()
    assert acc == 1.0


def test_same_seed_gives_identical_weights(data, tmp_path):
    a = train(TINY, *data, tmp_path / "a")
    b = train(TINY, *data, tmp_path / "b")
    wa, wb = load_file(str(a)), load_file(str(b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(TINY.with_overrides(["seed=1"]), *data, tmp_path / "c")
    wc = load_file(str(c))
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_interrupted_run_resumes_to_the_same_final_weights(data, tmp_path):
    full = train(TINY, *data, tmp_path / "full")

    with pytest.raises(KeyboardInterrupt):
        train(TINY, *data, tmp_path / "cut", on_epoch=stop_after_first)
    assert (tmp_path / "cut" / "state.pt").exists() and not (tmp_path / "cut" / "model.safetensors").exists()
    with pytest.raises(TumorlensError, match="--resume"):
        train(TINY, *data, tmp_path / "cut")
    resumed = train(TINY, *data, tmp_path / "cut", resume=True)
    wa, wb = load_file(str(full)), load_file(str(resumed))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(read_metadata(full)["history"]) == strip(read_metadata(resumed)["history"])


def test_resume_with_another_config_is_refused(data, tmp_path):
    def stop(row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TINY, *data, tmp_path / "r", on_epoch=stop)
    with pytest.raises(TumorlensError, match="same configuration") as e:
        train(TINY.with_overrides(["lr=0.01", "model.channels=[8,16,16,16]"]), *data, tmp_path / "r", resume=True)
    assert str(e.value).endswith("differs: lr 0.003 -> 0.01, model.channels [8, 16, 16, 32] -> [8, 16, 16, 16]")


@pytest.mark.parametrize("content", [b"", b"garbage, not a state file", b"PK\x03\x04 cut short"])
def test_a_damaged_resume_state_is_a_one_line_error_saying_to_delete_it(data, tmp_path, capsys, content):
    run = tmp_path / "r"
    run.mkdir()
    (run / "state.pt").write_bytes(content)
    with pytest.raises(TumorlensError) as e:
        train(TINY, *data, run, resume=True)
    msg = str(e.value)
    assert msg.startswith(f"{run / 'state.pt'}: damaged resume state (") and "\n" not in msg
    assert msg.endswith("); delete it to start the run over")
    from tumorlens.cli import main

    assert main(["train", str(tmp_path / "data"), "--strategy", "stratified", "--out", str(run), "--resume"]) == 2
    assert capsys.readouterr().err == f"error: {msg}\n"  # said before any data are read


@pytest.mark.parametrize("flip", [True, False])
def test_temperature_is_fitted_on_the_logits_the_predictor_computes(data, tmp_path, flip):
    from tumorlens.metrics import fit_temperature
    from tumorlens.predict import Predictor

    cfg = TINY.with_overrides([f"flip_average={str(flip).lower()}"])
    ckpt = train(cfg, *data, tmp_path / "run")
    pr = Predictor(ckpt, refuse=False, backend="torch")
    val = data[1]
    assert pr.flip_average is flip
    want = fit_temperature(pr.logits(val.x[:, 0].numpy()), val.y.numpy())
    cal = read_metadata(ckpt)["calibration"]
    assert cal["temperature"] == pytest.approx(want, rel=1e-6) and cal["flip_average"] is flip


def test_a_stored_config_without_a_later_setting_reads_as_that_run_behaved():
    from tumorlens.config import STORED_BEFORE

    d = TrainConfig().to_dict()
    for k in STORED_BEFORE:
        del d[k]
    old = TrainConfig.from_dict(d)
    assert old.turn == 0.1 and old.flip_average is False and old.contrast == 0.0 and old.sequence == 0.0
    assert TrainConfig().turn == 0.25 and TrainConfig().flip_average is True and TrainConfig().contrast == 0.3
    assert TrainConfig.from_file_dict({"epochs": 3}).flip_average is True  # a user's partial file: defaults


def test_run_folder_holds_checkpoint_history_and_config(data, tmp_path):
    ckpt = train(TINY, *data, tmp_path / "run", meta={"split": {"strategy": "test"}})
    doc = read_metadata(ckpt)
    assert doc["classes"] == ["glioma", "meningioma", "notumor", "pituitary"]
    assert doc["config"]["preprocess"]["size"] == 64 and doc["split"]["strategy"] == "test"
    assert len(doc["history"]) == 3 and "calibration" in doc and doc["calibration"]["temperature"] > 0
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == 4
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 3
    assert not (tmp_path / "run" / "state.pt").exists()
    with pytest.raises(TumorlensError, match="finished run"):
        train(TINY, *data, tmp_path / "run")


def test_a_trained_model_gets_abstention_and_refusal_fitted_on_its_own_parts(data, tmp_path):
    from tumorlens.predict import Predictor
    from tumorlens.refusal import finalize_checkpoint

    tr, va = data
    ckpt = train(TINY, tr, va, tmp_path / "run")
    doc = read_metadata(ckpt)
    assert doc["abstention"]["fitted_on"] == "val" and doc["abstention"]["n"] == len(va.y)
    assert doc["refusal"]["n_train"] == len(tr.y) and doc["refusal"]["n_val"] == len(va.y)
    pr = Predictor(ckpt)
    assert pr.ood is not None and pr.threshold == doc["abstention"]["threshold"] > 0
    # the same fits as finalizing the checkpoint afterwards, as build_model.py does
    again = finalize_checkpoint(ckpt, tr.x[:, 0].numpy(), va.x[:, 0].numpy(), va.y.numpy(), y_train=tr.y.numpy(),
                                out=tmp_path / "again.safetensors")
    assert read_metadata(again)["refusal"] == doc["refusal"]
    assert read_metadata(again)["abstention"] == doc["abstention"]
    few = train(TINY, tr, SplitData(va.x[:9], va.y[:9], va.paths[:9]), tmp_path / "few")
    assert "refusal" not in read_metadata(few) and "abstention" not in read_metadata(few)


def test_checkpoint_loads_without_other_files_and_rejects_garbage(data, tmp_path):
    ckpt = train(TINY, *data, tmp_path / "run")
    moved = tmp_path / "alone.safetensors"
    moved.write_bytes(ckpt.read_bytes())
    c = load_checkpoint(moved)
    assert c.config.model.channels == (8, 16, 16, 32) and len(c.sha256) == 64
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(TumorlensError, match="not a tumorlens checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(TumorlensError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_config_overrides_parse_and_reject_unknown_keys():
    cfg = TrainConfig().with_overrides(["epochs=5", "model.lstm_hidden=32", "preprocess.size=96"])
    assert cfg.epochs == 5 and cfg.model.lstm_hidden == 32 and cfg.preprocess.size == 96
    with pytest.raises(TumorlensError, match="unknown setting"):
        TrainConfig().with_overrides(["model.depth=3"])
    with pytest.raises(TumorlensError, match="key=value"):
        TrainConfig().with_overrides(["epochs"])


def test_mask_guided_run_is_deterministic_and_resumes_to_the_same_weights(masked_data, tmp_path):
    tr, va = masked_data
    cfg = TINY.with_overrides(["seg_weight=1.0", "model.gate=true"])
    full = train(cfg, tr, va, tmp_path / "full")
    again = train(cfg, tr, va, tmp_path / "again")

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tr, va, tmp_path / "cut", on_epoch=stop_after_first)
    resumed = train(cfg, tr, va, tmp_path / "cut", resume=True)
    wa = load_file(str(full))
    for other in (again, resumed):
        wb = load_file(str(other))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    g = read_metadata(full)["mask_guidance"]
    assert g["used"] is True and g["seg_weight"] == 1.0 and g["train_images_with_mask"] == len(tr.y)


def test_ema_run_keeps_the_average_and_resumes_to_the_same_weights(data, tmp_path):
    cfg = TINY.with_overrides(["ema=0.9"])
    full = train(cfg, *data, tmp_path / "full")
    raw = train(TINY, *data, tmp_path / "raw")
    wa, wr = load_file(str(full)), load_file(str(raw))
    # the same seed and batches: only the averaging differs, so the kept weights must differ
    assert any(not torch.equal(wa[k], wr[k]) for k in wa if wa[k].is_floating_point())

    with pytest.raises(KeyboardInterrupt):
        train(cfg, *data, tmp_path / "cut", on_epoch=stop_after_first)
    resumed = train(cfg, *data, tmp_path / "cut", resume=True)
    wb = load_file(str(resumed))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ema_outside_zero_to_one_is_refused():
    with pytest.raises(TumorlensError, match="ema must be in"):
        TINY.with_overrides(["ema=1.0"])


def test_mixup_blends_images_masks_and_knowledge_by_one_weight():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 4, 4)
    m = (torch.rand(8, 1, 4, 4) > 0.5).float()
    known = torch.tensor([True, True, True, True, True, True, False, False])
    xm, mm, km, lam, partner = _mix(x, m, known, 0.4, g)
    assert 0.5 <= lam <= 1.0 and sorted(partner.tolist()) == list(range(8))
    assert torch.allclose(xm, lam * x + (1 - lam) * x[partner])
    assert torch.allclose(mm, lam * m + (1 - lam) * m[partner])
    assert torch.equal(km, known & known[partner])  # a mask half-unknown is unknown


def test_mixup_run_differs_from_plain_and_resumes_to_the_same_weights(masked_data, tmp_path):
    tr, va = masked_data
    plain = TINY.with_overrides(["seg_weight=1.0", "model.gate=true", "strip=0.0"])
    cfg = plain.with_overrides(["mixup=0.4"])
    full = train(cfg, tr, va, tmp_path / "full")
    wa, wp = load_file(str(full)), load_file(str(train(plain, tr, va, tmp_path / "plain")))
    assert any(not torch.equal(wa[k], wp[k]) for k in wa if wa[k].is_floating_point())

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tr, va, tmp_path / "cut", on_epoch=stop_after_first)
    wb = load_file(str(train(cfg, tr, va, tmp_path / "cut", resume=True)))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_mixup_outside_its_range_is_refused():
    with pytest.raises(TumorlensError, match="mixup must be in"):
        TINY.with_overrides(["mixup=-1"])


def test_turn_outside_zero_to_one_is_refused():
    with pytest.raises(TumorlensError, match="turn must be a share"):
        TINY.with_overrides(["turn=1.5"])


@pytest.mark.parametrize("pair, message", [
    ("epochs=abc", "epochs=abc: expects a whole number"),
    ("augment=1", "augment=1: expects true or false"),
    ("model.channels=[8,\"a\"]", "expects a list of whole numbers"),
    ("epochs=0", "epochs must be >= 1"),
    ("batch_size=1", "batch_size must be >= 2"),
    ("lr=0", r"lr must be in \(0, 1\]"),
    ("lr=1e9", r"lr must be in \(0, 1\], got 1000000000.0"),
    ("weight_decay=Infinity", "weight_decay must be a finite number, got inf"),
    ("warmup_epochs=NaN", "warmup_epochs must be a finite number, got nan"),
    ("model.seg_blocks=9", r"model.seg_blocks must be from 0 to the number of conv blocks \(4\), got 9"),
    ("preprocess.norm_percentile=200", r"preprocess.norm_percentile must be in \(0, 100\], got 200.0"),
    ("preprocess.fg_threshold=1.5", r"preprocess.fg_threshold must be in \[0, 1\), got 1.5"),
    ("label_smoothing=1", r"label_smoothing must be in \[0, 1\)"),
    ("preprocess.size=60", "preprocess.size must be a multiple of 8"),
    ("model.head=gru", "model.head must be lstm or pool"),
    ("model.dropout=1.5", r"model.dropout must be in \[0, 1\)"),
    ("threads=100000", "threads must be <= 256, got 100000"),  # torch segfaulted (an audit)
    ("weight_decay=1e5", r"weight_decay must be below 1 / lr = 333.333, got 100000.0"),  # saved a model of inf
])
def test_a_setting_of_the_wrong_type_or_range_is_refused_before_training(pair, message):
    with pytest.raises(TumorlensError, match=message):
        TrainConfig().with_overrides([pair])


def test_numbers_are_accepted_where_a_float_is_expected():
    cfg = TrainConfig().with_overrides(["lr=1", "preprocess.size=96", "model.block_convs=[]"])
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.preprocess.size == 96 and cfg.model.block_convs == ()


def test_strip_run_differs_from_plain_and_resumes_to_the_same_weights(masked_data, tmp_path):
    """Skull stripping reads head depths computed once per run (train.py): a resumed run recomputes them and
    ends on the same weights."""
    plain = TINY.with_overrides(["seg_weight=1.0", "model.gate=true", "strip=0.0"])
    cfg = plain.with_overrides(["strip=0.5"])
    full = train(cfg, *masked_data, tmp_path / "full")

    with pytest.raises(KeyboardInterrupt):
        train(cfg, *masked_data, tmp_path / "cut", on_epoch=stop_after_first)
    resumed = train(cfg, *masked_data, tmp_path / "cut", resume=True)
    wf, wr = load_file(str(full)), load_file(str(resumed))
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    wp = load_file(str(train(plain, *masked_data, tmp_path / "plain")))
    assert not all(torch.equal(wf[k], wp[k]) for k in wf)


def test_equalize_run_feeds_the_model_equalised_batches_after_augmentation(data, tmp_path, monkeypatch):
    """With preprocess.equalize the intensity augmentation must not reach the model un-equalised: prediction
    equalises every input (data.preprocess_array), so training does the same after augmenting."""
    from tumorlens.augment import equalize_batch
    from tumorlens.model import TumorNet

    seen = []
    orig = TumorNet.forward_train

    def spy(self, x):
        seen.append(x.detach().clone())
        return orig(self, x)

    monkeypatch.setattr(TumorNet, "forward_train", spy)
    train(TINY.with_overrides(["preprocess.equalize=true", "epochs=1"]), *data, tmp_path / "eq")
    assert seen and all(torch.equal(equalize_batch(x), x) for x in seen)
    seen.clear()
    train(TINY.with_overrides(["epochs=1"]), *data, tmp_path / "plain")
    assert seen and not all(torch.equal(equalize_batch(x), x) for x in seen)


def test_a_diverging_run_stops_with_one_line_naming_lr_and_keeps_its_last_finite_epoch(data, tmp_path, monkeypatch):
    import tumorlens.train as train_mod

    steps = len(data[0].y) // TINY.batch_size
    real = train_mod.lr_at
    # from epoch 2 on the step size is nan, as a far too large rate makes the weights: the loss turns nan
    monkeypatch.setattr(train_mod, "lr_at", lambda step, *a: float("nan") if step >= steps else real(step, *a))
    run = tmp_path / "r"
    with pytest.raises(TumorlensError) as e:
        train(TINY, *data, run)
    assert str(e.value) == (f"training diverged at epoch 2 (loss nan); lower lr (now 0.003) and start over: "
                            f"delete {run / 'state.pt'} or choose another --out")
    st = torch.load(run / "state.pt", weights_only=True)  # the state of epoch 1, intact and finite
    assert st["epoch"] == 0 and all(torch.isfinite(v).all() for v in st["model"].values() if v.is_floating_point())
    assert not (run / "model.safetensors").exists()


def test_a_run_whose_validation_loss_turns_nan_stops_and_keeps_its_last_sound_epoch(data, tmp_path, monkeypatch):
    """With a finite training loss, weights gone to inf had shown "val loss nan" epoch after epoch and ended in
    a saved model that answered nothing (or an error naming no file or setting)."""
    import tumorlens.train as train_mod

    real = train_mod._evaluate
    calls = []

    def evaluate(model, d):
        calls.append(1)
        return (float("nan"), 0.25) if len(calls) >= 2 else real(model, d)

    monkeypatch.setattr(train_mod, "_evaluate", evaluate)
    run = tmp_path / "r"
    with pytest.raises(TumorlensError) as e:
        train(TINY, *data, run)
    assert str(e.value).startswith(f"{run}: training diverged at epoch 2 (train loss ")
    assert "val loss nan; the weights are no longer finite); lower lr (now 0.003) or weight_decay" in str(e.value)
    assert torch.load(run / "state.pt", weights_only=True)["epoch"] == 0
    assert not (run / "model.safetensors").exists()


@pytest.mark.parametrize("change,message", [
    (lambda d: SplitData(d.x * 255, d.y, d.paths), "pixel values must lie in [0, 1]"),
    (lambda d: SplitData(d.x, d.y.to(torch.int32), d.paths), "y must be int64"),
    (lambda d: SplitData(d.x[:, 0], d.y, d.paths), "x must be float32 of shape (N, 1, 64, 64)"),
    (lambda d: SplitData(d.x.double(), d.y, d.paths), "x must be float32"),
    (lambda d: SplitData(d.x.numpy(), d.y, d.paths), "x and y must be torch tensors"),
    (lambda d: SplitData(d.x, d.y + 6, d.paths), "labels must be class indices 0..3"),
])
def test_training_data_built_by_hand_is_checked_in_one_line(data, tmp_path, change, message):
    """Python API users build SplitData themselves: torch's errors surfaced deep inside augmentation, and
    0..255 pixels trained silently into a model that disagrees with the Predictor's [0, 1] inputs."""
    with pytest.raises(TumorlensError, match=re.escape(message)):
        train(TINY, change(data[0]), data[1], tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_training_leaves_the_callers_thread_count_as_it_was(data, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(**{**TINY.__dict__, "epochs": 1, "threads": 2}), *data, tmp_path / "run")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_weights_hash_is_equal_for_equal_training_though_the_file_hash_is_not(data, tmp_path):
    """Two runs with the same seed train the same weights; their files differ by the timings they record, so
    `tumorlens info` prints a hash of the weights alone to compare runs by (a user audit compared file hashes)."""
    from tumorlens.checkpoint import weights_sha256
    from tumorlens.data import file_sha256

    from tumorlens.checkpoint import load_checkpoint, save_checkpoint

    cfg = TrainConfig(**{**TINY.__dict__, "epochs": 1})
    a, b = train(cfg, *data, tmp_path / "a"), train(cfg, *data, tmp_path / "b")
    assert weights_sha256(a) == weights_sha256(b)
    ck = load_checkpoint(a)  # the same weights with other recorded times: another file, the same weights hash
    one = save_checkpoint(tmp_path / "one.safetensors", ck.model, cfg, {"train_seconds": 1.0})
    two = save_checkpoint(tmp_path / "two.safetensors", ck.model, cfg, {"train_seconds": 2.0})
    assert file_sha256(one) != file_sha256(two) and weights_sha256(one) == weights_sha256(two) == weights_sha256(a)


def test_an_unknown_setting_names_the_closest_ones():
    with pytest.raises(TumorlensError, match=r"unknown setting 'model.lstm_hiden'; did you mean model.lstm_hidden"):
        TrainConfig().with_overrides(["model.lstm_hiden=64"])
    with pytest.raises(TumorlensError, match=r"unknown setting 'zzz'; settings: augment, batch_size"):
        TrainConfig().with_overrides(["zzz=1"])


def test_resume_refuses_other_images_or_a_run_that_lost_its_masks(data, masked_data, tmp_path):
    """A run resumed without its tumour masks, or on another split once the run folder's split.csv was gone,
    went on silently to weights that match neither recipe (an audit)."""
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(TINY, *data, run, on_epoch=stop_after_first)
    tr, va = data
    fewer = SplitData(tr.x[1:], tr.y[1:], tr.paths[1:])
    with pytest.raises(TumorlensError, match="--resume needs the train and val images of the interrupted run"):
        train(TINY, fewer, va, run, resume=True)
    guided = TINY.with_overrides(["seg_weight=1.0", "model.gate=true"])
    run2 = tmp_path / "run2"
    with pytest.raises(KeyboardInterrupt):
        train(guided, *masked_data, run2, on_epoch=stop_after_first)
    mtr, mva = masked_data
    with pytest.raises(TumorlensError, match=r"it trained guided by \d+ tumour masks, now without masks"):
        train(guided, SplitData(mtr.x, mtr.y, mtr.paths), mva, run2, resume=True)
    train(guided, *masked_data, run2, resume=True)  # the same data resumes
    assert (run2 / "model.safetensors").is_file()


def test_a_second_training_into_a_busy_run_folder_is_refused(data, tmp_path):
    """Both of two trainings into one --out said "wrote model.safetensors", the second over the first."""
    fcntl = pytest.importorskip("fcntl")

    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "w") as held:  # what a running training holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TumorlensError, match="another training is writing to this run folder"):
            train(TINY, *data, run)
        (run / "state.pt").write_bytes(b"")  # what a running training has written after its first epoch
        with pytest.raises(TumorlensError, match="another training is writing"):  # not "holds an unfinished run"
            check_run_dir(run, False)
        (run / "state.pt").unlink()
    train(TINY, *data, run)
    assert (run / "model.safetensors").is_file() and not (run / ".lock").exists()


def test_training_leaves_the_callers_random_stream_as_it_was(data, tmp_path):
    """train seeds torch's global generator for its own run; the caller's stream was left reset (an audit)."""
    torch.manual_seed(1)
    torch.rand(1)
    want = torch.rand(3)
    torch.manual_seed(1)
    torch.rand(1)
    train(TINY.with_overrides(["epochs=1"]), *data, tmp_path / "run")
    assert torch.equal(torch.rand(3), want)



@pytest.mark.parametrize("change, message", [
    (lambda d: SplitData(d.x, d.y, d.paths, d.masks * 255, d.known), r"mask values must lie in \[0, 1\]"),
    (lambda d: SplitData(d.x, d.y, d.paths, d.masks, None), "masks need `known`"),
    (lambda d: SplitData(d.x, d.y, d.paths, d.masks[:, 0], d.known), "masks must be a float tensor of x's shape"),
])
def test_hand_built_masks_are_checked_in_one_line(masked_data, tmp_path, change, message):
    """0..255 masks trained silently; masks without `known` raised AttributeError deep in train (an audit)."""
    guided = TINY.with_overrides(["seg_weight=1.0", "model.gate=true"])
    with pytest.raises(TumorlensError, match=message):
        train(guided, change(masked_data[0]), masked_data[1], tmp_path / "run")
