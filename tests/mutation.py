"""Mutation check: does the test suite catch small, realistic bugs?

Each mutant below is a bug written as exact code edits (file, snippet,
replacement). ``python tests/mutation.py`` applies one mutant at a time to a
temporary copy of the repository (without .git and .venv), runs the test
files expected to catch it on that copy with an empty kernel cache, and
prints a table: mutant, caught by (the first failing test), time. It exits 0
only when every mutant is caught.

A snippet must occur exactly once in its file. When a refactoring moves or
rewrites the code, the check stops before running anything and names the
mutants that no longer apply: update their snippets (and file) to the new
code rather than deleting them.

Usage::

    python tests/mutation.py                  # every mutant, one at a time
    python tests/mutation.py --only exemplar-test-ge --only noise-abs
    python tests/mutation.py --jobs 2         # two mutants at once
    python tests/mutation.py --list           # names, descriptions, test files
    python tests/mutation.py --check          # does every mutant still apply? (seconds)

Each mutant compiles the kernels afresh (its sources differ, so the kernel
cache is keyed apart; a fresh cache folder is used anyway). Measured on a
2-core VM under a load of 11-13 (other sessions' work): 17 mutants in 29 min
with --jobs 2, of which 11 min for the baseline and 22-157 s per mutant
(432 s when the first test file passes whole).
"""

import argparse
import concurrent.futures
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Not copied: version control, environments, caches and build products.
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".hypothesis", ".pytest_cache", "*.nbi", "*.nbc",
    "*.egg-info", "build", "dist", "env", "results", "html", ".numba_cache", ".asv",
)


@dataclasses.dataclass(frozen=True)
class Edit:
    path: str  # relative to the repository root
    snippet: str  # must occur exactly once in the file
    replacement: str


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    edits: tuple
    tests: tuple  # test files expected to catch it, the likeliest first


def mutant(name, description, edits, tests):
    if isinstance(edits, Edit):
        edits = (edits,)
    return Mutant(name, description, tuple(edits), tuple(tests))


MESSAGES = "fastap/_kernels/messages.py"
SPARSE_MESSAGES = "fastap/_kernels/sparse_messages.py"
SETUP = "fastap/_kernels/setup.py"
SPARSE_ASSIGN = "fastap/_kernels/sparse_assign.py"
ASSIGN = "fastap/_kernels/assign.py"
DENSE = "fastap/_dense.py"
RUN = "fastap/_run.py"

MUTANTS = [
    # ---- kernels (fastap/_kernels: stable locations) ----
    mutant(
        "next-availability-damping-swapped",
        "availability update weighs old and new with 1-d and d swapped (the issue's "
        "next_availability experiment; invisible at damping 0.5)",
        Edit(MESSAGES, "    return a * damping - clipped * one_minus_damping\n",
             "    return a * one_minus_damping - clipped * damping\n"),
        ["tests/test_sparse.py", "tests/test_kernels.py"],
    ),
    mutant(
        "responsibility-damping-swapped",
        "responsibility update with d and 1-d swapped",
        Edit(MESSAGES, "    return r * damping + (s - subtracted) * one_minus_damping\n",
             "    return r * one_minus_damping + (s - subtracted) * damping\n"),
        ["tests/test_kernels.py"],
    ),
    mutant(
        "availability-not-clipped",
        "off-diagonal availability min(0, ...) dropped",
        Edit(MESSAGES, "    clipped = max(positive_r - col_sum_k, zero)\n",
             "    clipped = positive_r - col_sum_k\n"),
        ["tests/test_kernels.py"],
    ),
    mutant(
        "diagonal-clipped-in-column-sum",
        "R(k, k) added clipped, max(R, 0), to its column sum (must be unclipped)",
        Edit(MESSAGES, "    col_sum_acc[i] = sum_before_diagonal + R_row[i]\n",
             "    col_sum_acc[i] = sum_before_diagonal + max(R_row[i], zero)\n"),
        ["tests/test_kernels.py"],
    ),
    mutant(
        "diagonal-availability-damping-swapped",
        "A(k, k) update with d and 1-d swapped",
        Edit(MESSAGES,
             "        A[k, k] = A[k, k] * damping - (R[k, k] - col_sum[k]) * one_minus_damping\n",
             "        A[k, k] = A[k, k] * one_minus_damping - (R[k, k] - col_sum[k]) * damping\n"),
        ["tests/test_kernels.py"],
    ),
    mutant(
        "exemplar-test-ge",
        "a sample is an exemplar when A(k,k) + R(k,k) >= 0 instead of > 0",
        Edit(MESSAGES, "        exemplar = A[k, k] + R[k, k] > 0\n",
             "        exemplar = A[k, k] + R[k, k] >= 0\n"),
        ["tests/test_properties.py", "tests/test_parity.py"],
    ),
    mutant(
        "second-max-misses-first-chunk",
        "the row's second maximum skips the first 256-column chunk (rows longer than 256)",
        Edit(MESSAGES,
             "        if chunk != best_chunk:\n            second_key = max(second_key, chunk_top[chunk])\n",
             "        if chunk != best_chunk and chunk > 0:\n"
             "            second_key = max(second_key, chunk_top[chunk])\n"),
        ["tests/test_kernels.py", "tests/test_properties.py"],
    ),
    mutant(
        "column-sums-rows-reversed",
        "parallel float64 column sums added in reverse row order within a block "
        "(not scikit-learn's order: bitwise parity lost)",
        Edit(MESSAGES, "            for i in range(block_start, block_stop):\n",
             "            for i in range(block_stop - 1, block_start - 1, -1):\n"),
        ["tests/test_kernels.py"],
    ),
    mutant(
        "float32-column-sums-in-float32",
        "float32 column sums accumulated in float32 instead of float64",
        [
            Edit(DENSE, "        self.col_sum_acc = np.zeros(n, dtype=np.float64)\n",
                 "        self.col_sum_acc = np.zeros(n, dtype=S.dtype)\n"),
            Edit(DENSE,
                 "            self.group_sums = np.empty((-(-n // self.group_rows), n), "
                 "dtype=np.float64)\n",
                 "            self.group_sums = np.empty((-(-n // self.group_rows), n), "
                 "dtype=S.dtype)\n"),
        ],
        ["tests/test_kernels.py"],
    ),
    mutant(
        "noise-coefficient-abs",
        "degeneracy noise scaled by eps * |S| instead of scikit-learn's eps * S",
        Edit(SETUP,
             "        coefficient = epsilon * s + tiny_times_100\n        values[p] = s",
             "        coefficient = epsilon * abs(s) + tiny_times_100\n        values[p] = s"),
        ["tests/test_kernels.py", "tests/test_parity.py"],
    ),
    mutant(
        "nearest-exemplar-last-maximum",
        "a sample joins the last of equally similar exemplars (scikit-learn: the first)",
        Edit(ASSIGN, "            if value > best_value:\n", "            if value >= best_value:\n"),
        ["tests/test_properties.py", "tests/test_parity.py"],
    ),
    mutant(
        "sparse-exemplar-test-ge",
        "sparse kernels: exemplar when A + R >= 0 instead of > 0",
        Edit(SPARSE_MESSAGES, "    exemplar = A[d] + R[d] > 0\n", "    exemplar = A[d] + R[d] >= 0\n"),
        ["tests/test_sparse.py"],
    ),
    mutant(
        "sparse-missing-pair-counts-zero",
        "sparse: a cluster member without a stored pair counts as similarity 0, not -inf",
        Edit(SPARSE_ASSIGN,
             "        out[j] = total if members[j] == cluster_sizes[labels[j]] else "
             "sums.dtype.type(-np.inf)\n",
             "        out[j] = total\n"),
        ["tests/test_sparse.py"],
    ),
    mutant(
        "sparse-noise-coefficient-abs",
        "the same noise bug, against the sparse tests alone (a graph-preparation bug: the "
        "sparse reference prepares its own graph)",
        Edit(SETUP,
             "        coefficient = epsilon * s + tiny_times_100\n        values[p] = s",
             "        coefficient = epsilon * abs(s) + tiny_times_100\n        values[p] = s"),
        ["tests/test_sparse.py"],
    ),
    mutant(
        "previous-iteration-finished-with-new-damping",
        "a row's availabilities of the previous iteration finished with this "
        "iteration's damping (visible only when the damping changes)",
        Edit(MESSAGES,
             "        i, S_row, A_row, R_row, col_sum, previous_damping, "
             "previous_one_minus_damping,\n",
             "        i, S_row, A_row, R_row, col_sum, damping, one_minus_damping,\n"),
        ["tests/test_damping_schedule.py"],
    ),
    # ---- drivers (moving in the restructure: update the snippets there) ----
    mutant(
        "convergence-counter-off-by-one",
        "convergence declared one unchanged iteration late",
        Edit(RUN, "unchanged_run >= options.convergence_iter",
             "unchanged_run > options.convergence_iter"),
        ["tests/test_parity.py"],
    ),
    mutant(
        "preference-on-anti-diagonal",
        "the preference written on the anti-diagonal instead of the diagonal",
        Edit(DENSE, "            self.S.flat[:: self.n_samples + 1] = self.preference\n",
             "            self.S.flat[self.n_samples - 1 : self.n_samples**2 - 1 : self.n_samples - 1]"
             " = self.preference\n"),
        ["tests/test_parity.py"],
    ),
]


def find_problems(root, mutants):
    """One line per edit whose snippet does not occur exactly once."""
    problems = []
    for m in mutants:
        for edit in m.edits:
            path = root / edit.path
            if not path.exists():
                problems.append(f"{m.name}: {edit.path} does not exist")
                continue
            count = path.read_text().count(edit.snippet)
            if count != 1:
                problems.append(
                    f"{m.name}: snippet found {count} times in {edit.path}: {edit.snippet.strip()!r}"
                )
        for test in m.tests:
            if not (root / test).exists():
                problems.append(f"{m.name}: test file {test} does not exist")
    return problems


def copy_tree(destination, revision=None):
    """The working tree (default) or a committed ``revision`` into ``destination``."""
    if revision is None:
        shutil.copytree(ROOT, destination, ignore=IGNORED, symlinks=True)
        return
    destination.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision],
        capture_output=True, check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)


def apply(mutant_, tree):
    for edit in mutant_.edits:
        path = tree / edit.path
        text = path.read_text()
        assert text.count(edit.snippet) == 1, (mutant_.name, edit.path)
        path.write_text(text.replace(edit.snippet, edit.replacement))


def run_pytest(tree, tests, timeout):
    """Run ``tests`` on ``tree`` with an empty kernel cache; (returncode, output)."""
    cache = tree / ".mutation-kernel-cache"
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(tree),
        FASTAP_CACHE_DIR=str(cache / "fastap"),
        NUMBA_CACHE_DIR=str(cache / "numba"),
        HYPOTHESIS_PROFILE="ci",
        PYTHONDONTWRITEBYTECODE="1",
    )
    # The copy, not an installed fastap, must be under test.
    check = subprocess.run(
        [sys.executable, "-c", "import fastap, sys; sys.stdout.write(fastap.__file__)"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120,
    )
    if not check.stdout.startswith(str(tree)):
        return None, f"fastap imported from {check.stdout or check.stderr!r}, not from the copy"
    command = [
        sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
        "-o", "addopts=-ra --strict-markers", *tests,
    ]
    try:
        completed = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"")
        return "timeout", output.decode() if isinstance(output, bytes) else output
    return completed.returncode, completed.stdout + completed.stderr


def first_failure(output):
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return match.group(1) if match else "?"


def check_mutant(mutant_, timeout, keep, revision):
    started = time.perf_counter()
    directory = Path(tempfile.mkdtemp(prefix=f"fastap-mutant-{mutant_.name}-"))
    tree = directory / "tree"
    try:
        copy_tree(tree, revision)
        apply(mutant_, tree)
        code, output = run_pytest(tree, mutant_.tests, timeout)
    except Exception as error:  # one broken mutant must not end the whole check
        code, output = f"{type(error).__name__}", str(error)
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    seconds = time.perf_counter() - started
    if code == 1:
        return mutant_, "caught", first_failure(output), seconds, output
    if code == 0:
        return mutant_, "SURVIVED", "-", seconds, output
    if code == "timeout":
        return mutant_, "TIMEOUT", f"no result in {timeout} s", seconds, output
    return mutant_, "ERROR", f"pytest exit {code}", seconds, output


def check_baseline(tests, timeout, revision):
    """The unmutated copy must pass the tests the mutants are checked with."""
    directory = Path(tempfile.mkdtemp(prefix="fastap-mutant-baseline-"))
    try:
        copy_tree(directory / "tree", revision)
        started = time.perf_counter()
        code, output = run_pytest(directory / "tree", tests, timeout)
        return code, output, time.perf_counter() - started
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this mutant (repeatable; comma-separated names too)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants checked at once (default 1)")
    parser.add_argument("--timeout", type=int, default=1200,
                        help="seconds per mutant's test run (default 1200)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip checking that the unmutated tree passes the selected tests")
    parser.add_argument("--rev", default=None, metavar="REVISION",
                        help="test a committed revision (e.g. HEAD) instead of the working tree")
    parser.add_argument("--keep", action="store_true", help="keep the mutated copies")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--check", action="store_true",
                        help="only check that every mutant still applies (seconds)")
    parser.add_argument("--verbose", action="store_true", help="print pytest's output of each")
    args = parser.parse_args(argv)

    selected = MUTANTS
    if args.only:
        names = {name for option in args.only for name in option.split(",") if name}
        unknown = names - {m.name for m in MUTANTS}
        if unknown:
            parser.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
        selected = [m for m in MUTANTS if m.name in names]
    if args.list:
        for m in selected:
            print(f"{m.name}\n    {m.description}\n    {', '.join(m.tests)}")
        return 0

    if args.rev is not None:
        # Every mutant copies the same commit, even when the branch moves meanwhile.
        args.rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{args.rev}^{{commit}}"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    if args.rev is None:
        problems = find_problems(ROOT, selected)
    else:
        with tempfile.TemporaryDirectory(prefix="fastap-mutant-check-") as directory:
            copy_tree(Path(directory) / "tree", args.rev)
            problems = find_problems(Path(directory) / "tree", selected)
    if problems:
        print("These mutants no longer apply (the code moved or changed): update their edits "
              "in tests/mutation.py.", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 2
    if args.check:
        print(f"all {len(selected)} mutants apply")
        return 0

    started = time.perf_counter()
    if not args.no_baseline:
        tests = sorted({test for m in selected for test in m.tests})
        print(f"baseline: unmutated tree on {' '.join(tests)} ...", flush=True)
        code, output, seconds = check_baseline(tests, args.timeout, args.rev)
        if code != 0:
            print(output[-5000:])
            print(f"baseline FAILED (exit {code}) in {seconds:.0f} s: fix the tests first; a "
                  "mutant caught by a failing test proves nothing.", file=sys.stderr)
            return 2
        print(f"baseline passed in {seconds:.0f} s", flush=True)

    rows = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(check_mutant, m, args.timeout, args.keep, args.rev) for m in selected]
        for future in concurrent.futures.as_completed(futures):
            m, status, caught_by, seconds, output = future.result()
            rows.append((m, status, caught_by, seconds))
            print(f"{status:8} {m.name}: {caught_by} ({seconds:.0f} s)", flush=True)
            if args.verbose or status not in ("caught", "SURVIVED"):
                print(output[-3000:], flush=True)

    order = {m.name: i for i, m in enumerate(selected)}
    rows.sort(key=lambda row: order[row[0].name])
    width = max(len(m.name) for m, *_ in rows)
    print()
    print(f"| {'mutant':{width}} | status   | caught by | time |")
    print(f"|{'-' * (width + 2)}|----------|-----------|------|")
    for m, status, caught_by, seconds in rows:
        print(f"| {m.name:{width}} | {status:8} | {caught_by} | {seconds:.0f} s |")
    n_caught = sum(status == "caught" for _, status, _, _ in rows)
    total = time.perf_counter() - started
    print(f"\n{n_caught} of {len(rows)} mutants caught in {total:.0f} s "
          f"({args.jobs} job{'s' if args.jobs > 1 else ''})")
    return 0 if n_caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
