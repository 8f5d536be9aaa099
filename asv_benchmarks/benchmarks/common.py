"""Shared settings: a wall-clock timer and the benchmark parameters.

asv's default timer is process time, which adds the threads together and
would make a two-thread fit look no faster than a one-thread one.
"""

import os
import timeit

# A quick profile for smoke runs (CI): FASTAP_ASV_QUICK=1 keeps one small
# size, so the whole grid of parameters still runs, in seconds.
QUICK = os.environ.get("FASTAP_ASV_QUICK", "0") == "1"

SIZES = [300] if QUICK else [500, 2000, 5000]
DTYPES = ["float32", "float64"]
THREADS = [1, 2]
IMPLEMENTATIONS = ["fastap", "sklearn"]


class Benchmark:
    """Base class: wall-clock timing, one warm-up, few repeats (fits are long)."""

    timer = timeit.default_timer
    warmup_time = 0
    number = 1
    repeat = (1, 3, 60.0)
    timeout = 1200
    processes = 1
