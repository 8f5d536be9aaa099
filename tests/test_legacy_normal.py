"""The parallel legacy-normal draw (fastap/_kernels/legacy_normal.py) against
NumPy's own ``RandomState.standard_normal``: the same values, bitwise, and
the generator left in the same state."""

import numba
import numpy as np
import pytest

from fastap._kernels import legacy_normal

MAX_THREADS = numba.config.NUMBA_NUM_THREADS


def assert_same_state(ours, theirs):
    mine, reference = ours.get_state(), theirs.get_state()
    np.testing.assert_array_equal(mine[1], reference[1])
    assert mine[0] == reference[0]
    assert mine[2:] == reference[2:]  # position, has_gauss, cached value
    # And the streams go on alike, for every kind of draw.
    assert ours.random_sample() == theirs.random_sample()
    assert ours.standard_normal() == theirs.standard_normal()
    assert ours.randint(0, 2**31) == theirs.randint(0, 2**31)


@pytest.mark.parametrize("seed", [0, 1, 12345])
@pytest.mark.parametrize("size", [1, 2, 3, 624, 1001, 100_003])
def test_equals_numpy_bitwise_and_leaves_the_same_state(seed, size):
    ours = np.random.RandomState(seed)
    theirs = np.random.RandomState(seed)
    np.testing.assert_array_equal(
        legacy_normal.standard_normal(ours, size), theirs.standard_normal(size)
    )
    assert_same_state(ours, theirs)


def test_sequence_of_draws_with_cached_values():
    # Odd counts leave a value cached (has_gauss) that the next draw returns
    # first; other draws in between move the words past a block boundary.
    ours = np.random.RandomState(7)
    theirs = np.random.RandomState(7)
    for size in [3, 1, 0, 5, 2, 4097, 1, 50_001]:
        np.testing.assert_array_equal(
            legacy_normal.standard_normal(ours, size), theirs.standard_normal(size)
        )
        assert ours.get_state()[3:] == theirs.get_state()[3:]
        assert ours.random_sample(size % 700).tolist() == theirs.random_sample(size % 700).tolist()
    assert_same_state(ours, theirs)


def test_fills_a_matrix_in_c_order_and_in_blocks():
    # The dense set-up draws the N x N noise by row blocks: the same stream.
    n = 301
    ours = np.random.RandomState(3)
    theirs = np.random.RandomState(3)
    expected = theirs.standard_normal(size=(n, n))
    blocks = np.empty((n, n))
    for start in range(0, n, 37):
        legacy_normal.fill_standard_normal(ours, blocks[start : start + 37])
    np.testing.assert_array_equal(blocks, expected)
    assert_same_state(ours, theirs)


def test_many_rounds(monkeypatch):
    # Rounds of few attempts: the rejected attempts of one round are
    # followed by a round for the pairs still missing.
    monkeypatch.setattr(legacy_normal, "_MAX_ROUND_ATTEMPTS", 5)
    ours = np.random.RandomState(11)
    theirs = np.random.RandomState(11)
    np.testing.assert_array_equal(
        legacy_normal.standard_normal(ours, 999), theirs.standard_normal(999)
    )
    assert_same_state(ours, theirs)


@pytest.mark.parametrize("n_threads", [1, 2, 3, 7])
def test_independent_of_threads(n_threads):
    previous = numba.get_num_threads()
    numba.set_num_threads(min(n_threads, MAX_THREADS))
    try:
        values = legacy_normal.standard_normal(np.random.RandomState(5), 200_001)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(values, np.random.RandomState(5).standard_normal(200_001))


def test_other_bit_generators_are_drawn_by_numpy():
    ours = np.random.RandomState(np.random.PCG64(4))
    theirs = np.random.RandomState(np.random.PCG64(4))
    np.testing.assert_array_equal(
        legacy_normal.standard_normal(ours, 1001), theirs.standard_normal(1001)
    )
    assert ours.standard_normal() == theirs.standard_normal()


def test_words_are_numpy_mt19937_outputs():
    state = np.random.RandomState(9).get_state()
    key = state[1].copy()
    words = np.empty(2000, dtype=np.uint32)
    position = legacy_normal.generate_words(key, state[2], words)
    generator = np.random.MT19937()
    generator.state = {"bit_generator": "MT19937", "state": {"key": state[1], "pos": state[2]}}
    np.testing.assert_array_equal(words, generator.random_raw(2000))
    np.testing.assert_array_equal(key, generator.state["state"]["key"])
    assert position == generator.state["state"]["pos"]


def test_parallel_noise_addition_matches_numpy(float_dtype):
    rng = np.random.RandomState(2)
    S = (-rng.uniform(0, 50, size=(97, 89))).astype(float_dtype)
    noise = rng.standard_normal(S.shape)
    info = np.finfo(float_dtype)
    expected = S.copy()
    expected += (info.eps * expected + info.tiny * 100) * noise
    ours = S.copy()
    legacy_normal.add_degeneracy_noise_parallel(ours.reshape(-1), noise.reshape(-1), info.eps,
                                       info.tiny * 100)
    np.testing.assert_array_equal(ours, expected)
