"""Cold start as a newcomer meets it: a new process, an empty kernel cache,
``import`` + the first fit, against scikit-learn in the same run.

Each measurement is a fresh ``python -c`` (its own empty ``FASTAP_CACHE_DIR``),
timed from the start of the process to the end of the fit; scikit-learn's
run does the same with ``sklearn.cluster.AffinityPropagation``. The data are
``make_blobs(N, 8 features, 10 centers)``. The machine's load average is
printed before and after (the numbers mean little on a busy machine).

Usage::

    python asv_benchmarks/cold_start_report.py [--sizes 50 500 2000]
        [--dtypes float64 float32] [--repeat-fits 1] [--fastap-path DIR]

``--fastap-path`` puts another checkout first on ``sys.path`` (a before/after
table from one run); ``--repeat-fits`` times that many fits in the same
process (the first is the cold one).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time, warnings
started = time.perf_counter()
library, n, dtype, repeat = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if library == "fastap":
    from fastap import AffinityPropagation
else:
    from sklearn.cluster import AffinityPropagation
imported = time.perf_counter()
from sklearn.datasets import make_blobs
X, _ = make_blobs(n_samples=n, n_features=8, centers=10, random_state=0)
X = X.astype(dtype)
fits = []
for _ in range(repeat):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AffinityPropagation(random_state=0).fit(X)
    fits.append(time.perf_counter() - start)
print(json.dumps({"import": imported - started, "fits": fits, "n_iter": int(model.n_iter_),
                  "n_clusters": int(model.cluster_centers_indices_.size)}))
"""


def load():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def measure(library, n, dtype, repeat, fastap_path):
    env = dict(os.environ)
    cache = tempfile.mkdtemp(prefix="fastap-cold-")
    env["FASTAP_CACHE_DIR"] = cache
    env.pop("NUMBA_CACHE_DIR", None)
    if fastap_path:
        env["PYTHONPATH"] = fastap_path + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-c", CHILD, library, str(n), dtype, str(repeat)],
        env=env, check=True, capture_output=True, text=True,
        # Not the repository: ``python -c`` puts the working folder first on
        # sys.path, ahead of --fastap-path.
        cwd=tempfile.gettempdir(),
    ).stdout
    total = time.perf_counter() - start
    result = json.loads(output.strip().splitlines()[-1])
    result["process"] = total
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 2000])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--repeat-fits", type=int, default=1)
    parser.add_argument("--fastap-path", default=None)
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {load():.2f}")
    print(f"{'N':>6} {'dtype':>8} {'library':>8} {'process s':>10} {'import s':>9} "
          f"{'first fit s':>12} {'later fits s':>14} {'n_iter':>7}")
    for n in args.sizes:
        for dtype in args.dtypes:
            libraries = ["fastap"] + ([] if args.skip_sklearn else ["sklearn"])
            for library in libraries:
                r = measure(library, n, dtype, args.repeat_fits, args.fastap_path)
                later = " ".join(f"{t:.2f}" for t in r["fits"][1:]) or "-"
                print(f"{n:>6} {dtype:>8} {library:>8} {r['process']:>10.2f} "
                      f"{r['import']:>9.2f} {r['fits'][0]:>12.2f} {later:>14} "
                      f"{r['n_iter']:>7}", flush=True)
    print(f"load average at end: {load():.2f}")


if __name__ == "__main__":
    main()
