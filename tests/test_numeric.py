"""The fast percentiles equal np.percentile bit for bit, so preprocessing matches cached training inputs."""
import numpy as np
import pytest

from tumorlens.numeric import percentile, percentiles


def _arrays(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for i in range(count):
        n = int(rng.choice([2, 3, 17, 1000, 5000, 70_000]))
        a = (rng.random(n) * rng.choice([1.0, 255.0, 4095.0, 60_000.0])).astype(np.float32)
        if i % 2:
            a = np.round(a)  # integer-valued: the histogram path when large enough
        if i % 5 == 0:
            a[: n // 3] = 0  # many ties, like a black background
        yield a


@pytest.mark.parametrize("q", [0.5, 1.0, 37.3, 50.0, 99.0, 99.5, 0.0, 100.0])
def test_scalar_percentile_equals_numpy_bit_for_bit(q):
    for a in _arrays(1, 60):
        assert percentile(a, q) == float(np.percentile(a, q))


@pytest.mark.parametrize("qs", [[0.5, 99.5], [1.0, 99.0], [0.0, 50.0, 100.0]])
def test_percentile_list_equals_numpy_bit_for_bit(qs):
    for a in _arrays(2, 60):
        assert percentiles(a, qs) == [float(v) for v in np.percentile(a, qs)]


def test_2d_and_float64_inputs_and_values_beyond_16_bits():
    rng = np.random.default_rng(3)
    a = np.round(rng.random((90, 80)) * 255)  # float64, integer-valued
    assert percentile(a, 99.0) == float(np.percentile(a, 99.0))
    b = np.round(rng.random(10_000) * 1e6).astype(np.float32)  # over 65535: partition path
    assert percentiles(b, [1.0, 99.0]) == [float(v) for v in np.percentile(b, [1.0, 99.0])]
    c = np.round(rng.random(10_000) * 255).astype(np.float32) - 100  # negative values: partition path
    assert percentile(c, 1.0) == float(np.percentile(c, 1.0))


def test_empty_array_is_an_error():
    with pytest.raises(ValueError):
        percentile(np.zeros(0, np.float32), 50.0)


def test_several_scalar_percentiles_at_once_equal_separate_calls():
    for a in _arrays(4, 40):
        assert percentile(a, 99.0, 1.0) == [float(np.percentile(a, 99.0)), float(np.percentile(a, 1.0))]


def _image_like(seed: int, count: int):
    """96 x 96 arrays shaped like thumbnails: dark background with runs of equal values, bright ellipse, rows of
    structure, sorted and two-valued extremes - the cases where a sampled threshold could mislead."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:96, 0:96]
    for i in range(count):
        kind = i % 6
        if kind == 0:  # head on a black background, integer grey levels (long runs of ties)
            a = np.where(((yy - 48) / 40.0) ** 2 + ((xx - 48) / 30.0) ** 2 < 1, rng.integers(60, 255, (96, 96)), 0)
        elif kind == 1:  # a few grey levels only
            a = rng.choice([0.0, 0.25, 0.5, 1.0], size=(96, 96), p=[0.5, 0.2, 0.2, 0.1])
        elif kind == 2:  # bright columns every 16 px: a strided sample could see all or none of them
            a = rng.random((96, 96)) * 0.1
            a[:, ::16] = 1.0 + rng.random((96, 6))
        elif kind == 3:  # sorted, then reversed
            a = np.sort(rng.random(96 * 96))[:: 1 if i % 12 < 6 else -1].reshape(96, 96)
        elif kind == 4:  # the top 2% all equal (saturated highlights)
            a = rng.random((96, 96))
            a.ravel()[rng.choice(a.size, a.size // 50, replace=False)] = 1.0
        else:  # smooth gradient with noise
            a = (yy + xx) / 190.0 + rng.normal(0, 0.01, (96, 96))
        yield a.astype(np.float32)


@pytest.mark.parametrize("qs", [[0.5, 99.5], [1.0, 99.0], [99.0], [0.5], [2.5, 97.5]])
def test_near_end_percentiles_equal_numpy_on_image_like_arrays(qs):
    # ranks within 3% of an end come from a sampled threshold (numeric._tail), the rest from the general path
    for a in _image_like(5, 60):
        assert percentiles(a, qs) == [float(v) for v in np.percentile(a, qs)]
        assert percentile(a, *qs) == ([float(np.percentile(a, q)) for q in qs] if len(qs) > 1
                                      else float(np.percentile(a, qs[0])))


def test_near_end_ranks_with_nan_match_the_general_path(monkeypatch):
    # np.partition puts NaN last; the sampled threshold cannot see NaN, so arrays with NaN take the general path
    import tumorlens.numeric as numeric

    rng = np.random.default_rng(6)
    arrays = []
    for share in (0.001, 0.02, 0.2):
        a = rng.random(9216).astype(np.float32)
        a[rng.choice(a.size, max(1, int(share * a.size)), replace=False)] = np.nan
        arrays.append(a)
    fast = [percentiles(a, [0.5, 99.5]) for a in arrays]
    monkeypatch.setattr(numeric, "_TAIL_MIN_SIZE", 10 ** 12)
    general = [percentiles(a, [0.5, 99.5]) for a in arrays]
    assert np.array_equal(np.array(fast), np.array(general), equal_nan=True)


def test_sampled_threshold_that_lets_too_few_through_falls_back():
    # the sampled positions hold exactly the largest values, so the threshold read off the sample lets fewer
    # elements through than the rank needs: _tail must say so (None) and the general path answer, exactly
    import tumorlens.numeric as numeric

    a = np.zeros(9216, np.float32)
    sampled = np.arange(0, a.size, numeric._SAMPLE_STEP)
    a[sampled] = np.arange(1, sampled.size + 1, dtype=np.float32)
    k = int((a.size - 1) * 0.995)
    assert numeric._tail(a, [k, k + 1], high=True) is None
    assert percentiles(a, [0.5, 99.5]) == [float(v) for v in np.percentile(a, [0.5, 99.5])]
