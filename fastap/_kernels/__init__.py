"""Numba kernels. No validation here: callers pass C-contiguous float arrays.

- ``messages``: the responsibility and availability updates (the AP loop).
- ``setup``: similarity, median preference, degeneracy noise, checks.
- ``assign``: exemplar flags to clusters.
"""

# Registers the cache locator before any kernel module (``_order``'s overloads
# included) creates a cached function.
from fastap._kernels import _jit  # noqa: F401
