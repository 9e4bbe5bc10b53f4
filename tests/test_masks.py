"""Mask guidance: borrowed masks line up with the images, follow augmentation, and train the gate."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from tumorlens.augment import augment
from tumorlens.config import ModelConfig, Preprocess, TrainConfig, TumorlensError
from tumorlens.data import load_dataset
from tumorlens.masks import dataset_masks
from tumorlens.model import build_model
from tumorlens.synthetic import make_arrays
from tumorlens.train import SplitData, mask_loss, train


def _blob_image(size: int, cy: int, cx: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size]
    head = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.42 * size) ** 2
    blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < r ** 2
    img = np.where(head, 90, 0).astype(np.uint8)
    img[blob] = 250
    return img, blob


def _fake_layout(root, mirrored: bool):
    """A Kaggle-style folder with one mapped tumour, one unmapped tumour and one no-tumour image, the
    mapping CSV, and a figshare-style folder whose mask is stored mirrored when `mirrored`."""
    data, fig = root / "kaggle", root / "figshare-brain-tumor"
    for c in ("glioma", "notumor"):
        (data / "Training" / c).mkdir(parents=True)
    (fig / "masks").mkdir(parents=True)
    img, blob = _blob_image(256, 90, 70, 20)  # off-centre, so a wrong flip cannot pass
    Image.fromarray(img).save(data / "Training" / "glioma" / "a.png")
    Image.fromarray(_blob_image(256, 128, 180, 15)[0]).save(data / "Training" / "glioma" / "b.png")
    Image.fromarray(_blob_image(256, 0, 0, 0)[0]).save(data / "Training" / "notumor" / "n.png")
    m = blob[:, ::-1] if mirrored else blob
    Image.fromarray((m * 255).astype(np.uint8)).resize((512, 512), Image.NEAREST).save(fig / "masks" / "7.png")
    (fig / "metadata.csv").write_text("index,image,mask,class_name,cv_fold\n7,images/7.jpg,masks/7.png,glioma,1\n")
    (data / "KAGGLE_TO_FIGSHARE.csv").write_text(
        "kaggle_path,kaggle_class,figshare_index,orientation_vs_figshare_jpg,correlation,figshare_class,"
        "figshare_cv_fold,label_agrees\n"
        f"Training/glioma/a.png,glioma,7,{'mirrored_lr' if mirrored else 'same'},0.999,glioma,1,1\n"
        "Training/glioma/b.png,glioma,8,same,0.80,glioma,1,1\n")  # below the match threshold: no mask
    return data, blob


@pytest.mark.parametrize("mirrored", [False, True])
def test_borrowed_masks_line_up_with_the_preprocessed_images(tmp_path, mirrored):
    data, _ = _fake_layout(tmp_path, mirrored)
    pre = Preprocess()
    ds = load_dataset(data, pre, workers=1)
    masks, known = dataset_masks(ds, pre)
    by = {e.path: i for i, e in enumerate(ds.entries)}
    a, b, n = by["Training/glioma/a.png"], by["Training/glioma/b.png"], by["Training/notumor/n.png"]
    assert known[a] and known[n] and not known[b]
    assert masks[n].max() == 0 and masks[b].max() == 0
    bright = ds.images[a] > 0.95  # the blob is the brightest thing in the preprocessed image
    inter = np.logical_and(bright, masks[a] > 0.5).sum()
    assert inter / np.logical_or(bright, masks[a] > 0.5).sum() > 0.7
    again, _ = dataset_masks(ds, pre)  # from the cache
    assert np.array_equal(again, masks)


def test_missing_figshare_folder_is_a_clear_error(tmp_path):
    data, _ = _fake_layout(tmp_path, False)
    (tmp_path / "figshare-brain-tumor" / "metadata.csv").unlink()
    ds = load_dataset(data, Preprocess(), workers=1)
    with pytest.raises(TumorlensError, match="figshare"):
        dataset_masks(ds, Preprocess())


def test_augmentation_moves_masks_with_the_images_and_draws_the_same_randomness():
    img, blob = _blob_image(64, 20, 40, 7)
    x = torch.from_numpy(img / 255.0).float().view(1, 1, 64, 64).repeat(16, 1, 1, 1)
    m = torch.from_numpy(blob.astype(np.float32)).view(1, 1, 64, 64).repeat(16, 1, 1, 1)
    xa, ma = augment(x, torch.Generator().manual_seed(3), masks=m)
    assert torch.equal(xa, augment(x, torch.Generator().manual_seed(3)))
    for i in range(16):
        bright = xa[i, 0] > 0.8 * xa[i, 0].max()
        inside = ma[i, 0] > 0.5
        assert (bright & inside).sum() / (bright | inside).sum() > 0.5


def test_mask_loss_matches_hand_computed_values():
    seg = [torch.full((2, 1, 2, 2), 2.0)]
    masks = torch.ones(2, 1, 4, 4)
    known = torch.tensor([True, False])
    # logit 2 against target 1 everywhere: log(1 + e^-2); the unknown image does not count
    assert mask_loss(seg, masks, known).item() == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-6)
    masks[1] = 0  # unknown, so still no change
    assert mask_loss(seg, masks, known).item() == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-6)
    # zero logits: log 2 whatever the target; two heads are averaged
    seg2 = [torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 1, 1)]
    assert mask_loss(seg2, masks, torch.tensor([True, True])).item() == pytest.approx(math.log(2.0), rel=1e-6)
    assert mask_loss(seg, masks, torch.tensor([False, False])).item() == 0.0


def test_gate_model_forward_equals_training_forward_and_exposes_the_gate_as_cam_layer():
    m = build_model(ModelConfig(channels=(8, 16, 16, 32), lstm_hidden=16, dense=16, gate=True,
                                fine_gate=False)).eval()
    x = torch.rand(3, 1, 64, 64)
    z, seg = m.forward_train(x)
    assert torch.allclose(z, m(x), atol=1e-6)
    assert [tuple(s.shape) for s in seg] == [(3, 1, 8, 8)]  # the plain gate's map; the fine one: test_fine_gate
    assert m.cam_layer == "gate" and m.get_cam_module() is m.gate


def test_guided_training_lowers_the_mask_loss_of_the_gate(tmp_path):
    from tumorlens.checkpoint import load_checkpoint

    x, y, masks = make_arrays(8, size=64, seed=0)
    t = torch.from_numpy(x).unsqueeze(1)
    mk = torch.from_numpy(masks.astype(np.float32)).unsqueeze(1)
    known = torch.ones(len(y), dtype=torch.bool)
    d = SplitData(t, torch.from_numpy(y), [], mk, known)
    cfg = TrainConfig(epochs=15, batch_size=16, lr=1e-2, threads=1, seg_weight=1.0, augment=False,
                      model=ModelConfig(channels=(8, 16, 16, 32), lstm_hidden=16, dense=16, gate=True))
    torch.manual_seed(cfg.seed)
    before = build_model(cfg.model).eval()  # the initial weights train() starts from
    after = load_checkpoint(train(cfg, d, SplitData(t[:0], d.y[:0], []), tmp_path / "run")).model.eval()
    with torch.no_grad():
        l0 = mask_loss(before.forward_train(t)[1], mk, known).item()
        l1 = mask_loss(after.forward_train(t)[1], mk, known).item()
    assert l1 < 0.5 * l0


def test_guidance_without_masks_trains_unguided_and_says_so(tmp_path):
    from tumorlens.checkpoint import read_metadata

    x, y, _ = make_arrays(2, size=64, seed=0)
    d = SplitData(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y), [])
    tiny = ModelConfig(channels=(8, 16, 16, 32), lstm_hidden=16, dense=16, gate=True)
    ck = train(TrainConfig(epochs=1, batch_size=4, threads=1, seg_weight=1.0, model=tiny), d, d, tmp_path / "run")
    assert read_metadata(ck)["mask_guidance"]["used"] is False
    with pytest.raises(TumorlensError, match="mask head"):
        train(TrainConfig(epochs=1, threads=1, seg_weight=1.0, model=ModelConfig(gate=False)), d, d, tmp_path / "r2")


def test_phantom_mask_folder_is_found_and_lines_up(tmp_path):
    from tumorlens.masks import training_masks
    from tumorlens.synthetic import make_dataset

    data = make_dataset(tmp_path / "ph", n_per_class=3, size=128, seed=0)
    pre = Preprocess()
    ds = load_dataset(data, pre, workers=1)
    mk, note = training_masks(ds, pre, 1.0)
    assert note["used"] and note["source"] == "mask folder" and mk[1].all()
    labels = np.array([e.label for e in ds.entries])
    assert (mk[0][labels == "notumor"].max() == 0) and (mk[0][labels != "notumor"].reshape(-1, 64 * 64).max(1) > 0.5).all()
    assert training_masks(ds, pre, 0.0) == (None, {"used": False, "reason": "seg_weight is 0"})


def test_turn_sets_the_share_of_images_turned_by_any_angle():
    """An off-centre blob ends up near one of its four mirror positions after a flip and a small turn; only
    an image turned by a large angle takes it elsewhere."""
    img, blob = _blob_image(64, 20, 40, 7)
    x = torch.from_numpy(img / 255.0).float().view(1, 1, 64, 64).repeat(64, 1, 1, 1)
    m = torch.from_numpy(blob.astype(np.float32)).view(1, 1, 64, 64).repeat(64, 1, 1, 1)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")

    def far_from_mirrors(turn: float) -> int:
        _, ma = augment(x, torch.Generator().manual_seed(4), masks=m, turn=turn)
        w = ma[:, 0] / ma[:, 0].sum((1, 2), keepdim=True)
        cy, cx = (w * yy).sum((1, 2)), (w * xx).sum((1, 2))
        y0, x0 = (m[0, 0] * yy).sum() / m[0, 0].sum(), (m[0, 0] * xx).sum() / m[0, 0].sum()
        mirrors = [(y0, x0), (63 - y0, x0), (y0, 63 - x0), (63 - y0, 63 - x0)]
        d = torch.stack([torch.hypot(cy - my, cx - mx) for my, mx in mirrors]).min(0).values
        return int((d > 6).sum())

    assert far_from_mirrors(0.0) == 0
    assert far_from_mirrors(1.0) >= 16  # a random angle lands near a mirror position ~half the time
