"""scikit-learn's noise stream, ``RandomState.standard_normal``, drawn in parallel.

scikit-learn adds ``(eps * S + tiny * 100) * random_state.standard_normal((n, n))``
to the similarities. NumPy draws that stream one value at a time (12-32 ns
per value: ~1 s at N = 8,000, about a minute at N = 50,000). This module
gives the same values, bitwise, and leaves the ``RandomState`` in the state
the serial draw leaves it in.

NumPy's legacy normal (``legacy_gauss``) is Marsaglia's polar method on
MT19937 ::

    repeat:                                   # one attempt: 4 words
        x1 = 2 * double(w0, w1) - 1
        x2 = 2 * double(w2, w3) - 1
        r2 = x1 * x1 + x2 * x2
    until 0 < r2 < 1
    f = sqrt(-2 * log(r2) / r2)
    return f * x2, and keep f * x1 for the next call (has_gauss, gauss)

with ``double(a, b) = ((a >> 5) * 2**26 + (b >> 6)) / 2**53``. Every attempt
uses exactly four 32-bit words, accepted or not, so attempts sit at fixed
word offsets. The draw is therefore:

1. MT19937 words, serially (the only sequential part: the twist of each
   624-word block depends on the previous one), ~1 ns per word in
   :func:`generate_words`;
2. the acceptance test of every attempt, in parallel by chunks, with a count
   per chunk;
3. a prefix sum of the chunk counts (tiny), then the transforms, each
   accepted attempt writing its two values where its rank puts them, in
   parallel.

Words are generated for at most as many attempts as pairs are still
missing, so the stream is never read past the last attempt the serial draw
would make; the generator's key and position are then written back with
``set_state``. A value cached by an earlier call (``has_gauss``) comes first;
an odd count caches the second value of the last pair, as NumPy does.

``log`` is the C library's, as in NumPy; ``sqrt`` and the arithmetic are
IEEE-exact and in the same order (no contraction into FMA: fastmath off).
"""

import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel, serial_kernel

_STATE_WORDS = 624
_SHIFT = 397

# Attempts per round at most (16 MiB of words); a round's attempts are
# split into chunks of _CHUNK_ATTEMPTS for the parallel steps.
_MAX_ROUND_ATTEMPTS = 1 << 20
_CHUNK_ATTEMPTS = 1 << 12


# --------------------------------------------------------------------------
# MT19937, as NumPy's mt19937.c.
# --------------------------------------------------------------------------


@serial_kernel
def _twist(key):
    """Regenerate the 624-word key (``mt19937_gen``)."""
    upper = np.uint32(0x80000000)
    lower = np.uint32(0x7FFFFFFF)
    matrix = np.uint32(0x9908B0DF)
    one = np.uint32(1)
    zero = np.uint32(0)
    for i in range(_STATE_WORDS - _SHIFT):
        y = (key[i] & upper) | (key[i + 1] & lower)
        key[i] = key[i + _SHIFT] ^ (y >> one) ^ (matrix if (y & one) else zero)
    for i in range(_STATE_WORDS - _SHIFT, _STATE_WORDS - 1):
        y = (key[i] & upper) | (key[i + 1] & lower)
        key[i] = key[i + _SHIFT - _STATE_WORDS] ^ (y >> one) ^ (matrix if (y & one) else zero)
    y = (key[_STATE_WORDS - 1] & upper) | (key[0] & lower)
    key[_STATE_WORDS - 1] = key[_SHIFT - 1] ^ (y >> one) ^ (matrix if (y & one) else zero)


@serial_kernel
def _temper(key_segment, words):
    """Tempered outputs of a run of key words."""
    for k in range(words.size):
        y = key_segment[k]
        y ^= y >> np.uint32(11)
        y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
        y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
        y ^= y >> np.uint32(18)
        words[k] = y


@serial_kernel
def generate_words(key, position, words):
    """Fill ``words`` (uint32) with the next MT19937 outputs.

    ``key`` (uint32, 624) is advanced in place; ``position`` is the index
    of the next key word to use (624: twist first). Returns the new
    position, so that ``(key, position)`` is NumPy's state after the same
    number of ``next32`` calls.
    """
    done = 0
    total = words.size
    while done < total:
        if position == _STATE_WORDS:
            _twist(key)
            position = 0
        take = min(_STATE_WORDS - position, total - done)
        _temper(key[position : position + take], words[done : done + take])
        position += take
        done += take
    return position


# --------------------------------------------------------------------------
# The polar method on a round of attempts.
# --------------------------------------------------------------------------


@serial_kernel
def _uniform(high_word, low_word):
    """NumPy's ``mt19937_next_double`` from two consecutive words."""
    a = np.int64(high_word >> np.uint32(5))
    b = np.int64(low_word >> np.uint32(6))
    return (a * 67108864.0 + b) / 9007199254740992.0


@serial_kernel
def _attempt(words, attempt):
    """``(x1, x2, r2)`` of one attempt (words ``4 * attempt ...``)."""
    base = 4 * attempt
    x1 = 2.0 * _uniform(words[base], words[base + 1]) - 1.0
    x2 = 2.0 * _uniform(words[base + 2], words[base + 3]) - 1.0
    r2 = x1 * x1 + x2 * x2
    return x1, x2, r2


@serial_kernel
def _count_chunk(words):
    """Accepted attempts among those of ``words`` (no branch: it vectorizes)."""
    count = 0
    for attempt in range(words.size // 4):
        x1, x2, r2 = _attempt(words, attempt)
        count += np.int64((r2 < 1.0) & (r2 != 0.0))
    return count


@parallel_kernel
def count_accepted(words, n_attempts, chunk_counts):
    """Accepted attempts per chunk of ``_CHUNK_ATTEMPTS`` (chunks in parallel)."""
    n_chunks = chunk_counts.size
    for chunk in prange(n_chunks):
        first = chunk * _CHUNK_ATTEMPTS
        last = min(first + _CHUNK_ATTEMPTS, n_attempts)
        chunk_counts[chunk] = _count_chunk(words[4 * first : 4 * last])


@serial_kernel
def _write_chunk(words, out, position, spill):
    """Pairs of the accepted attempts of ``words`` from ``out[position]`` on
    (see :func:`write_pairs`). The transform stays behind the acceptance
    branch, so ``log`` is the C library's scalar one, never a vector
    version with other rounding."""
    size = out.size
    for attempt in range(words.size // 4):
        x1, x2, r2 = _attempt(words, attempt)
        if r2 < 1.0 and r2 != 0.0:
            f = np.sqrt(-2.0 * np.log(r2) / r2)
            if position < size:
                out[position] = f * x2
            if position + 1 < size:
                out[position + 1] = f * x1
            else:
                spill[0] = f * x1
            position += 2


@parallel_kernel
def write_pairs(words, n_attempts, chunk_first_pair, out, first_value, spill):
    """Write the pairs of the accepted attempts: pair ``p`` (the ``p``-th
    accepted attempt of the round) gives ``f * x2`` and then ``f * x1`` at
    ``first_value + 2p`` and the next position of ``out`` (float64, 1-d);
    a value past its end goes to ``spill[0]`` (the one an odd count leaves
    cached). ``chunk_first_pair`` holds each chunk's first pair."""
    for chunk in prange(chunk_first_pair.size):
        first = chunk * _CHUNK_ATTEMPTS
        last = min(first + _CHUNK_ATTEMPTS, n_attempts)
        _write_chunk(
            words[4 * first : 4 * last], out, first_value + 2 * chunk_first_pair[chunk], spill
        )


# --------------------------------------------------------------------------
# The draw.
# --------------------------------------------------------------------------


def fill_standard_normal(random_state, out):
    """Fill ``out`` with ``random_state.standard_normal(out.size)``, bitwise,
    in parallel; leave ``random_state`` as that call would.

    Parameters
    ----------
    random_state : numpy.random.RandomState
        Advanced in place. A ``RandomState`` over another bit generator than
        MT19937 is drawn from serially by NumPy itself.
    out : ndarray, float64, C-contiguous
        Overwritten (any shape; filled in C order).
    """
    flat = out.reshape(-1)
    n_values = flat.size
    state = random_state.get_state(legacy=False)
    if state.get("bit_generator") != "MT19937" or n_values == 0:
        flat[:] = random_state.standard_normal(n_values)
        return out
    key = np.array(state["state"]["key"], dtype=np.uint32)
    position = int(state["state"]["pos"])
    has_gauss = bool(state["has_gauss"])
    gauss = float(state["gauss"])

    filled = 0
    if has_gauss:
        flat[0] = gauss
        filled = 1
        has_gauss = False
        gauss = 0.0
    spill = np.zeros(1, dtype=np.float64)
    missing_pairs = (n_values - filled + 1) // 2
    produced = 0
    words = np.empty(4 * min(missing_pairs, _MAX_ROUND_ATTEMPTS), dtype=np.uint32)
    while missing_pairs > 0:
        # Never more attempts than pairs still missing: each attempt makes
        # at most one pair, so the stream is not read past the serial draw.
        n_attempts = min(missing_pairs, _MAX_ROUND_ATTEMPTS)
        round_words = words[: 4 * n_attempts]
        position = generate_words(key, position, round_words)
        n_chunks = -(-n_attempts // _CHUNK_ATTEMPTS)
        chunk_counts = np.empty(n_chunks, dtype=np.int64)
        count_accepted(round_words, n_attempts, chunk_counts)
        chunk_first_pair = np.concatenate(([0], np.cumsum(chunk_counts)[:-1]))
        write_pairs(round_words, n_attempts, chunk_first_pair, flat, filled + 2 * produced, spill)
        accepted = int(chunk_counts.sum())
        produced += accepted
        missing_pairs -= accepted
    if (n_values - filled) % 2 == 1:
        has_gauss = True
        gauss = float(spill[0])
    random_state.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": key, "pos": position},
            "has_gauss": int(has_gauss),
            "gauss": gauss,
        }
    )
    return out


def standard_normal(random_state, size):
    """``random_state.standard_normal(size)``, bitwise, drawn in parallel."""
    return fill_standard_normal(random_state, np.empty(size, dtype=np.float64))


@parallel_kernel
def add_degeneracy_noise_parallel(values, noise, epsilon, tiny_times_100):
    """``values += (eps * values + tiny * 100) * noise``, in place, in
    parallel over chunks of the run: element by element the arithmetic of
    ``setup.add_degeneracy_noise`` (so bitwise NumPy's on float32 and
    float64 ``values``; ``noise`` float64, same length, 1-d)."""
    n = values.size
    n_chunks = min(n, 256)
    for chunk in prange(n_chunks):
        for p in range(chunk * n // n_chunks, (chunk + 1) * n // n_chunks):
            s = values[p]
            coefficient = epsilon * s + tiny_times_100
            values[p] = s + coefficient * noise[p]
