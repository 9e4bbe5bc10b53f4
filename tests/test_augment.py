"""Augmentation contracts: the grey-level curves are monotone, stay in range, and cost old runs nothing."""
import pytest
import torch

from tumorlens.augment import _contrast_curves, _head_ranks, augment
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
