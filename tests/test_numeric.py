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
