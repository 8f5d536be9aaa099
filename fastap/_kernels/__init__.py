"""Numba kernels. No validation here: callers pass C-contiguous float arrays.

- ``messages``: the responsibility and availability updates (the AP loop).
- ``setup``: similarity, median preference, degeneracy noise, checks.
- ``assign``: exemplar flags to clusters.
"""
