"""Compile time per kernel: what a cold fit, or a whole warm-up, compiles.

Runs the chosen workload (a first fit of 300 samples, float64 or float32;
the whole warm-up; ``handover``: a first float64 fit whose NumPy engine
hands over to the compiled one at once, what the first compiling fit of a
cold process compiles) in a new process with an empty kernel cache and
``FASTAP_COLD_START=compiled`` (the NumPy engine would compile nothing),
records Numba's ``numba:compile`` events (one per dispatcher and signature,
nested when a kernel compiles its callees) and prints the ten largest
exclusive times (a kernel's own time, its callees' compiles subtracted),
the number of compiled specialisations and the total.

Usage::

    python asv_benchmarks/compile_times.py {float64,float32,warmup,handover} [--top 10]
        [--fastap-path DIR] [--json OUT]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time, warnings
import numpy as np
from numba.core import event

workload = sys.argv[1]
records = []  # (name, signature, start, end, depth)
stack = []


class Listener(event.Listener):
    def on_start(self, ev):
        stack.append((ev.data["dispatcher"], ev.data["args"], time.perf_counter()))

    def on_end(self, ev):
        dispatcher, args, start = stack.pop()
        name = f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"
        records.append((name, str(args), start, time.perf_counter(), len(stack)))


started = time.perf_counter()
with event.install_listener("numba:compile", Listener()):
    import fastap
    from fastap import AffinityPropagation
    X = np.random.RandomState(0).standard_normal((300, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if workload == "warmup":
            fastap.warmup()
        elif workload == "handover":
            # The NumPy engine hands over at once: what the first compiling
            # fit of a cold process compiles.
            from fastap import _cold_start
            _cold_start.LEDGER.budget = 1.0  # spent by the set-up
            AffinityPropagation(random_state=0).fit(X)
        else:
            AffinityPropagation(random_state=0).fit(X.astype(workload))
total = time.perf_counter() - started
# Exclusive time: a compile's own span less the spans of the compiles nested in it.
exclusive = {}
for i, (name, sig, start, end, depth) in enumerate(records):
    inner = sum(e - s for (_, _, s, e, d) in records if d == depth + 1 and s >= start and e <= end)
    key = f"{name}{sig}"
    exclusive[key] = exclusive.get(key, 0.0) + (end - start - inner)
print(json.dumps({"total": total, "exclusive": exclusive,
                  "compile": sum(e - s for (_, _, s, e, d) in records if d == 0)}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["float64", "float32", "warmup", "handover"])
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--fastap-path", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    env = dict(os.environ, FASTAP_CACHE_DIR=tempfile.mkdtemp(prefix="fastap-compile-"),
               FASTAP_COLD_START="auto" if args.workload == "handover" else "compiled")
    if args.fastap_path:
        env["PYTHONPATH"] = args.fastap_path + os.pathsep + env.get("PYTHONPATH", "")
    # Run from the temp folder: ``python -c`` puts the working folder first on
    # sys.path, ahead of --fastap-path.
    output = subprocess.run([sys.executable, "-c", CHILD, args.workload], env=env, check=True,
                            capture_output=True, text=True, cwd=tempfile.gettempdir()).stdout
    result = json.loads(output.strip().splitlines()[-1])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    by_kernel = {}
    for key, seconds in result["exclusive"].items():
        name = key.split("(")[0]
        count, total = by_kernel.get(name, (0, 0.0))
        by_kernel[name] = (count + 1, total + seconds)
    print(f"load average {os.getloadavg()[0]:.2f}; workload {args.workload}: "
          f"{len(result['exclusive'])} specialisations of {len(by_kernel)} kernels, "
          f"compile {result['compile']:.1f} s of {result['total']:.1f} s")
    ranked = sorted(by_kernel.items(), key=lambda item: -item[1][1])[: args.top]
    for name, (count, seconds) in ranked:
        print(f"{seconds:7.2f} s  {count:2d}x  {name}")


if __name__ == "__main__":
    main()
