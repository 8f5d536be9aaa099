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
