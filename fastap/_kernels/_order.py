"""Order-preserving integer keys for IEEE floats.

For an IEEE float's bit pattern read as a signed integer, flipping every bit
but the sign of the negative numbers makes integer order equal float order
(-0.0 sorts just below +0.0). The map is its own inverse. Integer max/min
reductions vectorize where float ones do not, and integer digits allow radix
selection.
"""

import numpy as np
from numba import types
from numba.extending import overload


def order_key(bits):
    """Order-preserving integer key of float bits (and back: an involution)."""
    sign_shift = bits.dtype.itemsize * 8 - 1
    return bits ^ ((bits >> sign_shift) & np.iinfo(bits.dtype).max)


@overload(order_key, jit_options={"cache": True})
def _order_key_kernel(bits):
    # Constants typed like the key, so int32 keys stay int32 (twice the
    # SIMD lanes of int64).
    if bits == types.int32:
        sign_shift, magnitude = np.int32(31), np.int32(0x7FFFFFFF)
    elif bits == types.int64:
        sign_shift, magnitude = np.int64(63), np.int64(0x7FFFFFFFFFFFFFFF)
    else:
        return None

    def implementation(bits):
        return bits ^ ((bits >> sign_shift) & magnitude)

    return implementation


def lowest_key_like(bits_array):
    """The smallest integer of the dtype of ``bits_array`` (a typed sentinel)."""
    return np.iinfo(bits_array.dtype).min


@overload(lowest_key_like, jit_options={"cache": True})
def _lowest_key_like_kernel(bits_array):
    if bits_array.dtype == types.int32:
        lowest = np.int32(np.iinfo(np.int32).min)
    elif bits_array.dtype == types.int64:
        lowest = np.int64(np.iinfo(np.int64).min)
    else:
        return None

    def implementation(bits_array):
        return lowest

    return implementation


def bits_view(values):
    """The float array ``values`` viewed as signed integers of the same width."""
    return values.view(np.int64 if values.dtype.itemsize == 8 else np.int32)


@overload(bits_view, jit_options={"cache": True})
def _bits_view_kernel(values):
    # Viewed inside the kernel rather than passed in as a second argument:
    # two arguments sharing memory break the compiler's no-alias assumption.
    bits_type = np.int64 if values.dtype.bitwidth == 64 else np.int32

    def implementation(values):
        return values.view(bits_type)

    return implementation
