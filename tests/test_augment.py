"""Augmentation contracts: the grey-level curves are monotone, the sequence swap folds the head's grey levels,
skull stripping keeps the head's inner part only, all stay in range, and none costs old runs anything."""
import pytest
import torch

from tumorlens.augment import _contrast_curves, head_depth, _head_ranks, _sequence_swap, _t2_render, augment
from tumorlens.config import TrainConfig, TumorlensError

torch.set_num_threads(1)


def _heads(b: int = 24, seed: int = 0) -> torch.Tensor:
    """Dark background, a disc of random grey levels: a crude head per image."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    disc = ((yy - 16) ** 2 + (xx - 16) ** 2 < 12 ** 2).float()
    return (0.1 + 0.87 * torch.rand(b, 1, 32, 32, generator=g)) * disc + 0.03 * torch.rand(b, 1, 32, 32, generator=g)


def test_contrast_curves_map_each_image_by_a_monotone_curve_into_the_unit_range():
    x = _heads()
    y = _contrast_curves(x, 1.0, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    for a, b in zip(x.reshape(len(x), -1), y.reshape(len(y), -1)):
        order = a.argsort(stable=True)
        assert (b[order].diff() >= -1e-6).all()  # never reverses two grey levels
    assert (y - x).abs().amax((1, 2, 3)).min() > 0.01  # share 1: every image changed


def test_contrast_share_zero_draws_nothing_so_earlier_runs_replay_exactly():
    x = _heads()
    a = augment(x, torch.Generator().manual_seed(5))
    b = augment(x, torch.Generator().manual_seed(5), contrast=0.0)
    assert torch.equal(a, b)
    assert not torch.equal(a, augment(x, torch.Generator().manual_seed(5), contrast=0.5))
    c = _contrast_curves(x, 0.5, torch.Generator().manual_seed(5))
    changed = ((c - x).abs().amax((1, 2, 3)) > 1e-6).float().mean()
    assert 0.2 < changed < 0.8  # about half the images, not all and not none


def test_contrast_curves_are_deterministic_under_a_seed():
    x = _heads()
    assert torch.equal(_contrast_curves(x, 0.5, torch.Generator().manual_seed(2)),
                       _contrast_curves(x, 0.5, torch.Generator().manual_seed(2)))


def test_contrast_share_outside_the_unit_range_is_refused_with_its_name():
    with pytest.raises(TumorlensError, match="contrast must be in"):
        TrainConfig().with_overrides(["contrast=1.5"])


def test_head_ranks_match_hand_derived_ranks_and_leave_the_background():
    flat = torch.tensor([[0.0, 0.5, 0.2, 0.3]])
    # head pixels (> 0.08): 0.5, 0.2, 0.3 -> ranks 2, 0, 1 among 3; each maps to 0.08 + 0.92 * (rank + 0.5) / 3
    want = torch.tensor([[0.0, 0.08 + 0.92 * 2.5 / 3, 0.08 + 0.92 * 0.5 / 3, 0.08 + 0.92 * 1.5 / 3]])
    torch.testing.assert_close(_head_ranks(flat, flat.argsort(dim=1)), want)


def test_sequence_swap_maps_the_head_by_an_n_shaped_curve_and_leaves_the_background():
    x = _heads()
    y = _sequence_swap(x, 1.0, torch.Generator().manual_seed(3))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    head = x > 0.08
    assert torch.equal(y[~head], x[~head])  # background untouched
    assert (y[head] >= 0.08).all()  # the head stays foreground
    for a, b, h in zip(x, y, head):
        va, vb = a[h], b[h]
        order = va.argsort()
        va, vb = va[order], vb[order]
        step = vb.diff()
        # rising up to a grey in [0.15, 0.3], falling up to one in [0.45, 0.65], rising after: an N
        up1, down, up2 = va[1:] <= 0.15, (va[:-1] >= 0.3) & (va[1:] <= 0.45), va[:-1] >= 0.65
        assert (step[up1] >= -1e-6).all() and (step[down] <= 1e-6).all() and (step[up2] >= -1e-6).all()
        assert vb[(va > 0.3) & (va < 0.45)].mean() < vb[(va > 0.15) & (va < 0.3)].max()  # fluid above tissue


def test_sequence_share_zero_draws_nothing_so_earlier_runs_replay_exactly():
    x = _heads()
    a = augment(x, torch.Generator().manual_seed(5), contrast=0.3)
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(5), contrast=0.3, sequence=0.0))
    assert not torch.equal(a, augment(x, torch.Generator().manual_seed(5), contrast=0.3, sequence=0.5))


def test_sequence_share_outside_the_unit_range_is_refused_with_its_name():
    with pytest.raises(TumorlensError, match="sequence must be in"):
        TrainConfig().with_overrides(["sequence=-0.1"])


def _head_with_tumour(b: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """A uniform head (0.5) with a bright, uniform 'enhancing tumour' (0.9) and its mask."""
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    head = ((yy - 16) ** 2 + (xx - 16) ** 2 < 13 ** 2).float()
    tumour = ((yy - 12) ** 2 + (xx - 18) ** 2 < 4 ** 2).float()
    x = (0.5 * head * (1 - tumour) + 0.9 * tumour).expand(b, 1, 32, 32).clone()
    return x, tumour.expand(b, 1, 32, 32).clone()


def test_t2_render_refills_the_tumour_rings_it_with_oedema_and_leaves_the_background():
    x, m = _head_with_tumour()
    y = _t2_render(x, m, 1.0, torch.Generator().manual_seed(4))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    bg = x <= 0.08
    assert torch.equal(y[bg], x[bg])
    inside = m > 0.5
    for yi, ii in zip(y, inside):
        t = yi[ii]
        assert torch.allclose(t, t[0].expand_as(t))  # a uniform tumour keeps no texture to scale
        assert 0.55 <= float(t[0]) <= 0.95  # re-filled at the drawn T2 level, not the curve's value of 0.9
    # the ring just outside the tumour differs from the same curve without a mask (oedema), at least somewhere
    plain = _t2_render(x, None, 1.0, torch.Generator().manual_seed(4))
    ring = (torch.nn.functional.max_pool2d(m, 3, 1, 1) > 0) & ~inside
    assert not torch.allclose(y[ring], plain[ring])
    # no-tumour images (empty masks) get the curve alone
    empty = torch.zeros_like(m)
    torch.testing.assert_close(_t2_render(x, empty, 1.0, torch.Generator().manual_seed(4)), plain)


def test_t2_share_zero_draws_nothing_and_a_share_outside_the_unit_range_is_refused():
    x, m = _head_with_tumour()
    a = augment(x, torch.Generator().manual_seed(5), masks=m, contrast=0.3)
    b = augment(x, torch.Generator().manual_seed(5), masks=m, contrast=0.3, t2=0.0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], augment(x, torch.Generator().manual_seed(5), masks=m, contrast=0.3, t2=0.5)[0])
    with pytest.raises(TumorlensError, match="t2 must be in"):
        TrainConfig().with_overrides(["t2=1.5"])


def testhead_depth_counts_erosions_and_treats_enclosed_dark_regions_as_head():
    x = torch.zeros(1, 1, 16, 16)
    x[..., 2:14, 2:14] = 0.5  # a 12x12 head
    x[..., 6:10, 6:10] = 0.0  # a dark "ventricle" inside it
    d = head_depth(x, steps=8)[0, 0]
    assert d[0, 0] == 0 and d[1, 1] == 0 and d[2, 2] == 0  # outside, and the head's outline
    assert d[3, 3] == 1 and d[4, 4] == 2 and d[5, 5] == 3  # hand-derived: the n-th ring inside survives n erosions
    assert d[7, 7] == 5 and d[8, 8] == 5  # the enclosed dark square is head, at the centre of a 12-px square
    assert d.max() == 5


def test_strip_keeps_only_the_inner_head_and_share_zero_draws_nothing():
    x = _heads()
    a = augment(x, torch.Generator().manual_seed(5), contrast=0.3)
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(5), contrast=0.3, strip=0.0))
    y, m = augment(x, torch.Generator().manual_seed(5), strip=1.0, turn=0.0, masks=(x > 0.08).float())
    # the ring the strip removed is background: the stripped head is smaller than the mask of the whole
    # head would be after the same geometry, and the tumour masks were cut alike (nothing outside the image)
    assert y.shape == x.shape and (y >= 0).all() and (y <= 1).all()
    assert ((m > 0.5) & (y < 0.02)).float().mean() < 0.01
    pre = augment(x, torch.Generator().manual_seed(5), strip=1.0, turn=0.0, masks=(x > 0.08).float(),
                  depth=head_depth(x))  # computed beforehand, as train.py does: the same result
    assert torch.equal(pre[0], y) and torch.equal(pre[1], m)
    with pytest.raises(TumorlensError, match="strip must be in"):
        TrainConfig().with_overrides(["strip=2"])


def test_equalize_batch_equals_the_numpy_equalisation_of_each_image():
    import numpy as np

    from tumorlens.augment import equalize_batch
    from tumorlens.data import equalize_head

    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 1, 16, 16, generator=g)
    x[0, 0, :4] = 0.0
    x[1, 0, 5:9, 5:9] = 1.0  # ties share their mean rank
    x[2] = 0.0  # no head at all
    got = equalize_batch(x)
    for i in range(3):
        np.testing.assert_allclose(got[i, 0].numpy(), equalize_head(x[i, 0].numpy()), atol=1e-6)
