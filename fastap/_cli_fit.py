"""``fastap fit DATA``: cluster a .csv/.npy/.npz file from the command line.

Writes the labels (CSV: sample, label, exemplar), prints a JSON summary and
optionally draws a PNG. Every failure the user can cause (a missing or
malformed file, a bad option, a matrix too big for this machine) ends with
one line on stderr and a non-zero exit code, never a traceback.
"""

import argparse
import json
import os
import sys
import time
import warnings
import zipfile
import zlib

import numpy as np

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

SUFFIXES = (".csv", ".npy", ".npz")


class CommandError(Exception):
    """An error the user can fix; its message is printed on one line."""


def add_parser(commands):
    """Add the ``fit`` subcommand to the ``fastap`` parser."""
    parser = commands.add_parser(
        "fit",
        help="cluster a .csv/.npy/.npz file; write labels and a JSON summary",
        description=(
            "Cluster the samples in DATA (rows: samples, columns: features; or, with "
            "--precomputed, a square similarity matrix). Writes the labels as CSV "
            "(sample,label,exemplar), prints a JSON summary (or writes it with "
            "--summary-out) and, with --plot, draws a PNG."
        ),
    )
    parser.add_argument("data", metavar="DATA", help="a .csv, .npy or .npz file")
    parser.add_argument(
        "--precomputed",
        action="store_true",
        help="DATA is a square similarity matrix (larger = more similar)",
    )
    parser.add_argument(
        "--preference",
        type=float,
        default=None,
        help="preference of every sample (default: the median similarity)",
    )
    parser.add_argument(
        "--preference-quantile",
        type=float,
        default=None,
        metavar="Q",
        help="use this quantile of the similarities as the preference (0.5: median, 0: min)",
    )
    parser.add_argument(
        "--n-clusters",
        type=int,
        default=None,
        metavar="K",
        help="search for a preference that gives K clusters",
    )
    parser.add_argument(
        "--damping",
        type=_damping,
        default=0.5,
        help="in [0.5, 1), or 'auto' to raise it when the fit oscillates (default 0.5)",
    )
    parser.add_argument("--max-iter", type=int, default=200, help="(default 200)")
    parser.add_argument("--convergence-iter", type=int, default=15, help="(default 15)")
    parser.add_argument(
        "--dtype",
        choices=["auto", "float32", "float64"],
        default="auto",
        help="float32 halves the memory; auto keeps float32 files float32, else float64",
    )
    parser.add_argument("--n-jobs", type=int, default=None, help="threads (default: all)")
    parser.add_argument("--random-state", type=int, default=0, help="(default 0)")
    parser.add_argument("--key", default=None, help="array name inside a .npz with several arrays")
    parser.add_argument("--delimiter", default=",", help="CSV delimiter (default ',')")
    parser.add_argument(
        "--labels-out",
        default=None,
        metavar="PATH",
        help="labels CSV (default: DATA's name + '.labels.csv' next to it; '-': stdout)",
    )
    parser.add_argument(
        "--summary-out",
        default=None,
        metavar="PATH",
        help="write the JSON summary here (default: stdout, or stderr when labels go there)",
    )
    parser.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="draw the clusters (features) or the similarity heatmap (precomputed)",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress on stderr (default: only when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def _damping(text):
    """A float, or 'auto' (adaptive damping)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: a number in [0.5, 1) or 'auto'"
        ) from None


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


# --------------------------------------------------------------------------
# Reading the data.
# --------------------------------------------------------------------------


def _csv_lines_to_skip(path, delimiter):
    """Physical lines before the data: up to and including a header line
    (the first line that is not blank or a ``#`` comment, if any of its
    fields is not a number), else 0 (loadtxt skips blanks and comments)."""
    with open(path, encoding="utf-8-sig") as file:  # -sig: a byte-order mark is not data
        for number, line in enumerate(file, start=1):
            content = line.strip()
            if content and not content.startswith("#"):
                break
        else:
            return 0
    for field in content.split(delimiter):
        try:
            float(field)
        except ValueError:
            return number
    return 0


def read_data(path, key=None, delimiter=",", mmap=False):
    """The 2-D array in ``path`` (.csv, .npy or .npz).

    ``.npy`` files are memory-mapped when ``mmap`` is true, so a large
    similarity matrix is not read twice into memory before the fit's copy.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise CommandError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .npy or .npz"
        )
    if not os.path.isfile(path):
        raise CommandError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            skiprows = _csv_lines_to_skip(path, delimiter)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Empty input file" is handled below
                data = np.loadtxt(
                    path, delimiter=delimiter, skiprows=skiprows, ndmin=2, dtype=np.float64,
                    encoding="utf-8-sig",
                )
        elif suffix == ".npy":
            data = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        else:
            # Our own handle: np.load leaves its file open when the zip is damaged.
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
                names = list(archive.files)
                if key is None:
                    if len(names) != 1:
                        raise CommandError(
                            f"{path} holds {len(names)} arrays ({', '.join(names) or 'none'}); "
                            "choose one with --key"
                        )
                    key = names[0]
                if key not in names:
                    raise CommandError(f"{path} has no array {key!r} (it has: {', '.join(names)})")
                data = archive[key]
    except CommandError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        # (A damaged .npz: its zip directory or a compressed member.)
        raise CommandError(f"{path}: cannot read: {_one_line(error)}") from error
    if data.dtype.kind not in "biuf":
        raise CommandError(f"{path}: the data must be numeric, got dtype {data.dtype}")
    if data.ndim == 1:
        data = data.reshape(-1, 1)
    if data.ndim != 2:
        raise CommandError(f"{path}: expected a 2-D array, got shape {data.shape}")
    if data.size == 0:
        raise CommandError(f"{path}: no data")
    return data


def _fit_dtype(data, requested):
    if requested != "auto":
        return np.dtype(requested)
    return np.dtype(np.float32) if data.dtype == np.float32 else np.dtype(np.float64)


# --------------------------------------------------------------------------
# Progress.
# --------------------------------------------------------------------------


class ProgressBar:
    """Fit progress on a stream: iteration, exemplars, changes, time.

    On a terminal the line is redrawn in place at most ten times a second;
    elsewhere (a log file) a line is written at most once a second. It is a
    ``callback`` of :class:`fastap.AffinityPropagation` and never stops the
    fit.
    """

    def __init__(self, max_iter, stream, width=24):
        self.max_iter = max_iter
        self.stream = stream
        self.width = width
        self.in_place = stream.isatty()
        self.interval = 0.1 if self.in_place else 1.0
        self._last = -np.inf
        self._drawn = False

    def __call__(self, info):
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        if self.max_iter is None:  # an n_clusters search: no known total
            line = f"iteration {info.iteration}"
        else:
            filled = int(round(min(1.0, info.iteration / self.max_iter) * self.width))
            line = (
                f"[{'#' * filled}{'.' * (self.width - filled)}] iteration {info.iteration}"
                f"/{self.max_iter}"
            )
        line += (
            f"  exemplars {info.n_exemplars}  changed {info.n_changed}  {info.elapsed:.1f} s"
        )
        self.stream.write(("\r" + line + "\x1b[K") if self.in_place else line + "\n")
        self.stream.flush()
        self._drawn = True
        return False

    def close(self):
        """End the redrawn line."""
        if self._drawn and self.in_place:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------
# The command.
# --------------------------------------------------------------------------


def _default_labels_path(data_path):
    root, _ = os.path.splitext(data_path)
    return root + ".labels.csv"


def _write_labels(labels, exemplars, destination):
    exemplar_of = np.full(labels.size, -1, dtype=np.int64)
    assigned = labels >= 0
    exemplar_of[assigned] = exemplars[labels[assigned]]
    table = np.column_stack([np.arange(labels.size), labels, exemplar_of])
    if destination == "-":
        np.savetxt(
            sys.stdout, table, fmt="%d", delimiter=",", header="sample,label,exemplar", comments=""
        )
        sys.stdout.flush()
        return
    np.savetxt(
        destination, table, fmt="%d", delimiter=",", header="sample,label,exemplar", comments=""
    )


def _check_plot_possible(path):
    if not path.lower().endswith(".png"):
        raise CommandError(f"--plot {path}: the plot is written as PNG; name it *.png")
    try:
        import matplotlib
    except ImportError as error:
        raise CommandError(
            'the --plot option needs matplotlib: pip install "fastap[plot]"'
        ) from error
    matplotlib.use("Agg")


def _draw(path, data, model, precomputed):
    import matplotlib.pyplot as plt

    from fastap import plot

    figure, ax = plt.subplots(figsize=(7, 6))
    if precomputed:
        plot.similarity_heatmap(data, model.labels_, ax=ax)
    else:
        plot.clusters(data, model, ax=ax)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _preference_used(estimator):
    """The scalar preference of the fit (the median by default), or None."""
    preference = getattr(estimator, "preference_", None)
    if preference is None:
        return None
    preference = np.asarray(preference)
    return float(preference) if preference.ndim == 0 else None


def run_fit(args):
    """Run ``fastap fit``; raises CommandError, MemoryError or ValueError."""
    from sklearn.exceptions import ConvergenceWarning

    from fastap import AffinityPropagation
    from fastap._engine import check_memory

    if args.plot:
        _check_plot_possible(args.plot)
    data = read_data(args.data, key=args.key, delimiter=args.delimiter, mmap=args.precomputed)
    dtype = _fit_dtype(data, args.dtype)
    n_samples = data.shape[0]
    if args.precomputed:
        if data.shape[0] != data.shape[1]:
            raise CommandError(
                f"{args.data}: a similarity matrix must be square, got shape {data.shape}"
            )
        # Before converting: the converted copy is one of the fit's three
        # matrices, so the estimator then need not copy it again. Nor need
        # it copy an array read from a .csv/.npz (ours alone); only the
        # memory-mapped .npy file must stay as it is.
        check_memory(n_samples, dtype, n_new_matrices=3)
        converted = data.dtype != dtype or not data.flags.c_contiguous
        if converted:
            data = np.ascontiguousarray(data, dtype=dtype)
        ours = converted or (not isinstance(data, np.memmap) and data.flags.writeable)
        copy = not ours
    else:
        data = np.asarray(data, dtype=dtype)
        copy = True

    labels_path = args.labels_out or _default_labels_path(args.data)
    outputs = (("labels", labels_path), ("--summary-out", args.summary_out), ("--plot", args.plot))
    for option, path in outputs:
        folder = os.path.dirname(os.path.abspath(path)) if path and path != "-" else None
        if folder and not os.path.isdir(folder):
            raise CommandError(f"{option}: folder {folder} does not exist")
    estimator = AffinityPropagation(
        damping=args.damping,
        max_iter=args.max_iter,
        convergence_iter=args.convergence_iter,
        preference=args.preference,
        preference_quantile=args.preference_quantile,
        n_clusters=args.n_clusters,
        affinity="precomputed" if args.precomputed else "euclidean",
        random_state=args.random_state,
        n_jobs=args.n_jobs,
        copy=copy,
    )
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = None
    if show_progress:
        progress = ProgressBar(None if args.n_clusters else args.max_iter, sys.stderr)
        estimator.set_params(callback=progress)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        try:
            estimator.fit(data)
        finally:
            if progress is not None:
                progress.close()
        elapsed = time.perf_counter() - started
    for warning in caught:
        if issubclass(warning.category, (ConvergenceWarning, UserWarning)):
            print(f"fastap fit: warning: {_one_line(warning.message)}", file=sys.stderr)

    exemplars = np.asarray(estimator.cluster_centers_indices_, dtype=np.int64)
    labels = np.asarray(estimator.labels_, dtype=np.int64)
    _write_labels(labels, exemplars, labels_path)
    if args.plot:
        _draw(args.plot, data, estimator, args.precomputed)

    import resource

    sizes = np.bincount(labels[labels >= 0], minlength=exemplars.size)
    summary = {
        "data": args.data,
        "n_samples": int(n_samples),
        "n_features": None if args.precomputed else int(data.shape[1]),
        "affinity": "precomputed" if args.precomputed else "euclidean",
        "dtype": dtype.name,
        "n_clusters": int(exemplars.size),
        "exemplars": exemplars.tolist(),
        "cluster_sizes": sizes.tolist(),
        "preference_used": _preference_used(estimator),
        # damping="auto" and the n_clusters search can raise the damping.
        "damping_used": float(estimator.damping_),
        "n_iter": int(estimator.n_iter_),
        "converged": bool(estimator.converged_),
        "fit_seconds": round(elapsed, 4),
        # ru_maxrss is in KiB on Linux: the whole process, Python included.
        "peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "labels": labels_path,
        "plot": args.plot,
        "parameters": {
            "preference": args.preference,
            "preference_quantile": args.preference_quantile,
            "n_clusters": args.n_clusters,
            "damping": args.damping,
            "max_iter": args.max_iter,
            "convergence_iter": args.convergence_iter,
            "n_jobs": args.n_jobs,
            "random_state": args.random_state,
        },
    }
    # One key per line, lists kept on their line (exemplars can be many).
    text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in summary.items())
    text += "\n}"
    if args.summary_out == "-":
        print(text)
    elif args.summary_out:
        with open(args.summary_out, "w", encoding="utf-8") as file:
            file.write(text + "\n")
    elif labels_path == "-":
        print(text, file=sys.stderr)
    else:
        print(text)
    return 0


def fit_command(args):
    """``fastap fit``: errors become one line on stderr and exit code 1."""
    try:
        return run_fit(args)
    except KeyboardInterrupt:
        print("fastap fit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError as error:
        message = _one_line(error) or "out of memory"
        print(f"fastap fit: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except (CommandError, ValueError, TypeError, OSError, ImportError) as error:
        print(f"fastap fit: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
