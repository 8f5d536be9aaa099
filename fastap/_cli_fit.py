"""``fastap fit DATA``: cluster a .csv/.npy/.npz file from the command line.

Writes the labels (CSV: sample, label, exemplar), prints a JSON summary and
optionally draws a PNG. Every failure the user can cause (a missing or
malformed file, a bad option, a matrix too big for this machine) ends with
one line on stderr and a non-zero exit code, never a traceback (the
``fastap`` entry point, :func:`fastap._cli.main`, turns them into that
line).
"""

import argparse
import json
import os
import re
import sys
import time
import warnings

import numpy as np

from fastap._cli_data import CommandError, UsageError, read_data

AFFINITIES = ("euclidean", "cosine", "nearest_neighbors", "precomputed")


def add_parser(commands):
    """Add the ``fit`` subcommand to the ``fastap`` parser."""
    parser = commands.add_parser(
        "fit",
        help="cluster a .csv/.npy/.npz file; write labels and a JSON summary",
        description=(
            "Cluster the samples in DATA (rows: samples, columns: features; or, with "
            "--precomputed, a square similarity matrix). Writes the labels as CSV "
            "(sample,label,exemplar), prints a JSON summary (or writes it with "
            "--summary-out) and, with --plot, draws a PNG. CSV files are read with "
            "pandas: a header line is recognised (names, or pandas' default 0,1,...; "
            "--header/--no-header decide), and the row index pandas writes (an unnamed "
            "first column, or 0, 1, ..., n-1) or a first column of distinct row names is "
            "not a feature: the labels file repeats its names."
        ),
    )
    _add_problem_options(parser)
    _add_run_options(parser)
    _add_output_options(parser)
    return parser


def _add_problem_options(parser):
    """What to cluster, and with which similarity and preference."""
    parser.add_argument("data", metavar="DATA", help="a .csv, .npy or .npz file")
    parser.add_argument(
        "--precomputed",
        action="store_true",
        help="DATA is a square similarity matrix (larger = more similar)",
    )
    parser.add_argument(
        "--affinity",
        choices=AFFINITIES,
        default=None,
        help="similarity of two samples (default euclidean: minus the squared distance); "
        "nearest_neighbors: sparse, memory per neighbour pair instead of N x N",
    )
    parser.add_argument(
        "--n-neighbors",
        type=at_least_one("--n-neighbors"),
        default=None,
        metavar="K",
        help="neighbours per sample with --affinity nearest_neighbors (default: the "
        "estimator's)",
    )
    parser.add_argument(
        "--preference",
        type=float,
        default=None,
        help="preference of every sample (default: the median similarity)",
    )
    parser.add_argument(
        "--preference-quantile",
        type=_quantile,
        default=None,
        metavar="Q",
        help="use this quantile of the similarities as the preference (0.5: median, 0: min)",
    )
    parser.add_argument(
        "--n-clusters",
        type=at_least_one("--n-clusters"),
        default=None,
        metavar="K",
        help="search for a preference that gives K clusters",
    )


def _add_run_options(parser):
    """How the fit runs, and how the file is read."""
    parser.add_argument(
        "--damping",
        type=_damping,
        default=0.5,
        help="in [0.5, 1), or 'auto' to raise it when the fit oscillates (default 0.5)",
    )
    parser.add_argument(
        "--max-iter", type=at_least_one("--max-iter"), default=200, help="(default 200)"
    )
    parser.add_argument(
        "--convergence-iter",
        type=at_least_one("--convergence-iter"),
        default=15,
        help="(default 15)",
    )
    parser.add_argument(
        "--dtype",
        choices=["auto", "float32", "float64"],
        default="auto",
        help="float32 halves the memory; auto keeps float32 files float32, else float64",
    )
    parser.add_argument("--n-jobs", type=n_jobs, default=None, help="threads (default: all)")
    parser.add_argument("--random-state", type=int, default=0, help="(default 0)")
    parser.add_argument("--key", default=None, help="array name inside a .npz with several arrays")
    parser.add_argument(
        "--delimiter", default=None, help="CSV field separator: one character or 'tab' "
        "(default ',')"
    )
    parser.add_argument(
        "--index-col",
        default=None,
        metavar="COLUMN",
        help="CSV column (name, or number from 1) holding row names, not a feature; "
        "'none': every column is a feature",
    )
    header = parser.add_mutually_exclusive_group()
    header.add_argument(
        "--header",
        dest="header",
        action="store_true",
        default=None,
        help="CSV: the first line names the columns (default: detected)",
    )
    header.add_argument(
        "--no-header", dest="header", action="store_false", help="CSV: the first line is a sample"
    )
    parser.add_argument(
        "--columns",
        default=None,
        metavar="LIST",
        help="the feature columns, comma-separated: CSV header names or numbers from 1 "
        "(default: all)",
    )


def _add_output_options(parser):
    """Where the labels, summary, plot and progress go."""
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


# --------------------------------------------------------------------------
# Option values: range errors name the option, at parse time.
# --------------------------------------------------------------------------


def _damping(text):
    """A float in [0.5, 1), or 'auto' (adaptive damping)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: a number in [0.5, 1) or 'auto'"
        ) from None
    if not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0.5, 1) (or 'auto')")
    return value


def at_least_one(option):
    """An argparse type: an integer of at least 1 (``option`` names it in the docs)."""

    def integer(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: an integer") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
        return value

    return integer


def _quantile(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: a number in [0, 1]") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def n_jobs(text):
    """Threads: a positive count, or -1 (all cores), -2 (all but one), ..."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: an integer") from None
    if value == 0:
        raise argparse.ArgumentTypeError(
            "0 threads cannot run: give a count, or -1 for all cores (-2: all but one)"
        )
    return value


# Estimator parameters and the options that set them (for messages that
# come from the library, in Python's spelling).
_OPTION_OF = {
    "damping": "--damping",
    "max_iter": "--max-iter",
    "convergence_iter": "--convergence-iter",
    "preference_quantile": "--preference-quantile",
    "preference": "--preference",
    "n_clusters": "--n-clusters",
    "n_neighbors": "--n-neighbors",
    "n_jobs": "--n-jobs",
    "affinity": "--affinity",
}


def in_command_line_words(text):
    """A library message with its parameters spelled as options:
    ``damping="auto"`` -> ``--damping auto``, ``The 'max_iter' parameter``
    -> ``--max-iter``, ``float32 input`` -> ``--dtype float32``."""
    names = "|".join(sorted(_OPTION_OF, key=len, reverse=True))
    text = re.sub(
        rf"\b({names})=(['\"]?)([\w.\-]+)\2",
        lambda m: f"{_OPTION_OF[m.group(1)]} {m.group(3)}",
        text,
    )
    text = re.sub(rf"The '({names})' parameter of \w+", lambda m: _OPTION_OF[m.group(1)], text)
    text = re.sub(rf"'({names})'", lambda m: _OPTION_OF[m.group(1)], text)
    # Bare names with an underscore are clearly parameters (not words).
    underscored = "|".join(name for name in _OPTION_OF if "_" in name)
    text = re.sub(rf"(?<![\w-])({underscored})\b", lambda m: _OPTION_OF[m.group(1)], text)
    return text.replace("float32 input", "--dtype float32")


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _fit_dtype(data, requested):
    if requested != "auto":
        return np.dtype(requested)
    return np.dtype(np.float32) if data.dtype == np.float32 else np.dtype(np.float64)


# --------------------------------------------------------------------------
# Progress.
# --------------------------------------------------------------------------


class _LinePerUpdate:
    """A stream for tqdm that turns each redraw into a line of its own (a
    log file keeps every update, not only the first)."""

    def __init__(self, stream):
        self.stream = stream
        self.last = None

    def write(self, text):
        text = text.replace("\r", "").rstrip()
        if text and text != self.last:  # (closing redraws the last state)
            self.stream.write(text + "\n")
            self.last = text

    def flush(self):
        self.stream.flush()


class ProgressBar:
    """Fit progress on a stream, drawn by tqdm: iterations, rate, time,
    exemplars and changes.

    On a terminal the bar is redrawn in place at most ten times a second;
    elsewhere (a log file, a pipe) a line is written at most once a second.
    It is a ``callback`` of :class:`fastap.AffinityPropagation` and never
    stops the fit.

    Parameters
    ----------
    max_iter : int or None
        The total shown; None during an ``n_clusters`` search (no known total).
    stream : file-like
        Usually ``sys.stderr``.
    clock : callable, optional
        Seconds, for the redraw interval and the rate (tests give their own).
    """

    def __init__(self, max_iter, stream, clock=None):
        from tqdm import tqdm

        in_place = stream.isatty()
        self.bar = tqdm(
            total=max_iter,
            file=stream if in_place else _LinePerUpdate(stream),
            mininterval=0.1 if in_place else 1.0,
            miniters=1,
            unit="iter",
            desc="fit",
            dynamic_ncols=in_place,
            ncols=None if in_place else 100,
            ascii=not in_place,
            leave=True,
            disable=False,
            delay=float("inf"),  # nothing before the first iteration
            smoothing=0,  # the rate over the whole fit: the closing line repeats no other
        )
        if clock is not None:
            self.bar._time = clock  # tqdm's own hook (its tests replace it too)
            self.bar.start_t = self.bar.last_print_t = clock()

    def __call__(self, info):
        self.bar.set_postfix_str(
            f"exemplars {info.n_exemplars}, changed {info.n_changed}", refresh=False
        )
        if self.bar.n == 0:  # the first iteration: drawn at once
            self.bar.delay = 0
            self.bar.n = self.bar.last_print_n = info.iteration
            self.bar.refresh()
            self.bar.last_print_t = self.bar._time()
        else:
            self.bar.update(info.iteration - self.bar.n)
        return False

    def close(self):
        """Draw the final state and end the line."""
        if self.bar.n:
            self.bar.close()
        else:
            self.bar.leave = False
            self.bar.close()


class ChangeRecorder:
    """A ``callback`` that keeps each iteration's exemplar changes (for the
    advice when a fit does not converge); it never stops the fit."""

    def __init__(self, then=None):
        self.n_changed = []
        self.n_exemplars = None
        self.then = then

    def __call__(self, info):
        self.n_changed.append(info.n_changed)
        self.n_exemplars = info.n_exemplars
        if self.then is not None:
            self.then(info)
        return False


# --------------------------------------------------------------------------
# The command.
# --------------------------------------------------------------------------


def _default_labels_path(data_path):
    root, _ = os.path.splitext(data_path)
    return root + ".labels.csv"


def _write_labels(labels, exemplars, destination, row_names=None):
    """Write the labels CSV (``sample,label,exemplar``: numbers from 0, or
    the data's row names when it has them); False if stdout was a pipe
    closed by its reader."""
    exemplar_of = np.full(labels.size, -1, dtype=np.int64)
    assigned = labels >= 0
    exemplar_of[assigned] = exemplars[labels[assigned]]
    try:
        if destination == "-":
            _write_labels_to(sys.stdout, labels, exemplar_of, row_names)
            sys.stdout.flush()
        else:
            with open(destination, "w", encoding="utf-8", newline="") as file:
                _write_labels_to(file, labels, exemplar_of, row_names)
    except BrokenPipeError:
        if destination != "-":
            raise
        # `fastap fit ... --labels-out - | head`: the reader has what it
        # wanted; the plot and the summary (stderr) still follow.
        silence_stdout()
        return False
    return True


def _write_labels_to(file, labels, exemplar_of, row_names):
    if row_names is None:
        table = np.column_stack([np.arange(labels.size), labels, exemplar_of])
        np.savetxt(file, table, fmt="%d", delimiter=",", header="sample,label,exemplar",
                   comments="")
        return
    import csv

    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(["sample", "label", "exemplar"])
    # A sample with no cluster (label -1) has no exemplar: an empty field.
    writer.writerows(
        (name, label, row_names[exemplar] if exemplar >= 0 else "")
        for name, label, exemplar in zip(row_names, labels.tolist(), exemplar_of.tolist())
    )


def silence_stdout():
    """Point stdout at /dev/null after its reader went away, so that no
    later write (nor Python's flush at exit) fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a descriptor (a test's capture)
        pass
    finally:
        os.close(devnull)


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


def _draw(path, data, model, precomputed, feature_names):
    import matplotlib.pyplot as plt

    from fastap import plot

    figure, ax = plt.subplots(figsize=(7, 6))
    if precomputed:
        plot.similarity_heatmap(data, model.labels_, ax=ax)
    else:
        plot.clusters(data, model, ax=ax)
        if feature_names and len(feature_names) <= 2:
            # The features as drawn (more than two: principal components).
            ax.set_xlabel(feature_names[0])
            if len(feature_names) == 2:
                ax.set_ylabel(feature_names[1])
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


def _first_sentence(text):
    """scikit-learn's part of a warning that fastap may have extended."""
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def check_memory_early(n_samples, dtype):
    """Fail before converting a precomputed matrix when the fit cannot fit
    (the estimator checks again; this only saves the conversion)."""
    from fastap._resources import check_dense_memory

    check_dense_memory(n_samples, dtype, "auto")  # the estimator's default engine


def check_option_conflicts(args):
    """Options that contradict each other: a :class:`UsageError` (exit 2)
    before anything is read. Returns the affinity the options give."""
    affinity = args.affinity or ("precomputed" if args.precomputed else "euclidean")
    if args.precomputed and affinity != "precomputed":
        raise UsageError(f"--precomputed and --affinity {affinity} contradict each other "
                         "(--precomputed is --affinity precomputed)")
    if args.n_neighbors is not None and affinity != "nearest_neighbors":
        raise UsageError("--n-neighbors applies to --affinity nearest_neighbors only")
    if args.preference is not None and args.preference_quantile is not None:
        raise UsageError("--preference and --preference-quantile both set the preference: "
                         "give one")
    return affinity


def run_fit(args):
    """Run ``fastap fit``; raises CommandError, MemoryError or ValueError."""
    affinity = check_option_conflicts(args)
    if args.plot:
        _check_plot_possible(args.plot)
    precomputed = affinity == "precomputed"
    read, data, dtype, copy = _fit_input(args, precomputed)
    if args.affinity is None and not precomputed:
        warn_if_looks_like_similarities(args.data, data)
    labels_path = args.labels_out or _default_labels_path(args.data)
    _check_output_folders(
        (("labels", labels_path), ("--summary-out", args.summary_out), ("--plot", args.plot))
    )
    estimator = _estimator_for(args, affinity, copy)
    changes, elapsed = _fit_reporting_warnings(estimator, data, args)
    outcome = _non_convergence_report(estimator, changes, args)
    labels = np.asarray(estimator.labels_, dtype=np.int64)
    exemplars = np.asarray(estimator.cluster_centers_indices_, dtype=np.int64)
    labels_written = _write_labels(labels, exemplars, labels_path, read.row_names)
    if args.plot:
        _draw(args.plot, data, estimator, precomputed, read.feature_names)
    summary = _summary(args, read, data, dtype, estimator, affinity, outcome, elapsed,
                       labels_path if labels_written else "- (the reader closed the pipe)")
    _write_summary(summary, args.summary_out, labels_path)
    return 0


def _fit_input(args, precomputed):
    """``(read, data, dtype, copy)``: the file read, as the fit's array, and
    whether the estimator must copy it."""
    read = read_data(
        args.data, key=args.key, delimiter=args.delimiter, index_col=args.index_col,
        columns=args.columns, mmap=precomputed, header=args.header,
    )
    data = read.values
    for note in read.notes:
        print(f"fastap fit: note: {note}", file=sys.stderr)
    dtype = _fit_dtype(data, args.dtype)
    if not precomputed:
        return read, np.asarray(data, dtype=dtype), dtype, True
    if data.shape[0] != data.shape[1]:
        raise CommandError(
            f"{args.data}: a similarity matrix must be square, got shape {data.shape}"
        )
    # Before converting: the converted copy is one of the fit's three
    # matrices, so the estimator then need not copy it again. Nor need it
    # copy an array read from a .csv/.npz (ours alone); only the
    # memory-mapped .npy file must stay as it is.
    check_memory_early(data.shape[0], dtype)
    converted = data.dtype != dtype or not data.flags.c_contiguous
    if converted:
        data = np.ascontiguousarray(data, dtype=dtype)
    ours = converted or (not isinstance(data, np.memmap) and data.flags.writeable)
    return read, data, dtype, not ours


def warn_if_looks_like_similarities(path, X):
    """Warn when features (no --precomputed, no --affinity) are a square
    symmetric matrix, which a similarity matrix usually is: the check and
    the words of :func:`fastap.preference_range`'s warning, in options."""
    n_samples, n_features = X.shape
    if n_samples != n_features or n_samples < 3:
        return
    # Blocks of rows against the same columns: no N x N temporary (np.allclose
    # on X and X.T would allocate two), and a feature matrix usually differs
    # from its transpose in the first block.
    rows = max(1, (1 << 22) // n_samples)
    for start in range(0, n_samples, rows):
        if not np.allclose(X[start : start + rows], X[:, start : start + rows].T):
            return
    print(
        f"fastap fit: warning: {path} is a square symmetric matrix and no --affinity: it is "
        "treated as features (--affinity euclidean). If it holds similarities, pass "
        "--precomputed; pass --affinity euclidean to silence this warning.",
        file=sys.stderr,
    )


def _check_output_folders(outputs):
    for option, path in outputs:
        folder = os.path.dirname(os.path.abspath(path)) if path and path != "-" else None
        if folder and not os.path.isdir(folder):
            raise CommandError(f"{option}: folder {folder} does not exist")


def _estimator_for(args, affinity, copy):
    from fastap import AffinityPropagation

    parameters = dict(
        damping=args.damping, max_iter=args.max_iter, convergence_iter=args.convergence_iter,
        preference=args.preference, preference_quantile=args.preference_quantile,
        n_clusters=args.n_clusters, affinity=affinity, random_state=args.random_state,
        n_jobs=args.n_jobs, copy=copy,
    )
    if args.n_neighbors is not None:
        parameters["n_neighbors"] = args.n_neighbors
    return AffinityPropagation(**parameters)


def _fit_reporting_warnings(estimator, data, args):
    """Fit with the progress bar; warnings as one line each in the CLI's
    words. Returns the exemplar changes recorded and the fit's seconds."""
    from sklearn.exceptions import ConvergenceWarning

    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = None
    if show_progress:
        progress = ProgressBar(None if args.n_clusters else args.max_iter, sys.stderr)
    changes = ChangeRecorder(then=progress)
    estimator.set_params(callback=changes)
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
        if issubclass(warning.category, ConvergenceWarning):
            text = _first_sentence(_one_line(warning.message))
            print(f"fastap fit: warning: {text}", file=sys.stderr)
        elif issubclass(warning.category, UserWarning):
            text = in_command_line_words(_one_line(warning.message))
            print(f"fastap fit: warning: {text}", file=sys.stderr)
    return changes, elapsed


def _non_convergence_report(estimator, changes, args):
    """``(diagnosis, advice)`` of a fit that did not converge (the advice
    printed in option spelling), else ``(None, None)``."""
    from fastap._advice import diagnose_non_convergence, not_converged_advice

    if estimator.converged_ or not changes.n_changed:
        return None, None
    diagnosis = diagnose_non_convergence(
        changes.n_changed, n_iter=len(changes.n_changed), max_iter=args.max_iter,
        convergence_iter=args.convergence_iter, n_samples=int(estimator.labels_.size),
    ).kind
    advice = not_converged_advice(
        changes.n_changed, n_iter=len(changes.n_changed), max_iter=args.max_iter,
        damping=float(estimator.damping_), adaptive=args.damping == "auto",
        convergence_iter=args.convergence_iter,
        n_exemplars=int(estimator.cluster_centers_indices_.size),
        n_samples=int(estimator.labels_.size), style="cli",
    )
    print(f"fastap fit: what to do: {advice}", file=sys.stderr)
    return diagnosis, advice


def _summary(args, read, data, dtype, estimator, affinity, outcome, elapsed, labels_entry):
    import resource

    exemplars = np.asarray(estimator.cluster_centers_indices_, dtype=np.int64)
    labels = np.asarray(estimator.labels_, dtype=np.int64)
    sizes = np.bincount(labels[labels >= 0], minlength=exemplars.size)
    diagnosis, advice = outcome
    return {
        "data": args.data,
        "n_samples": int(data.shape[0]),
        "n_features": None if affinity == "precomputed" else int(data.shape[1]),
        "features": read.feature_names,
        "index_column": read.index_column,
        "affinity": affinity,
        "dtype": dtype.name,
        "n_clusters": int(exemplars.size),
        "exemplars": exemplars.tolist(),
        "cluster_sizes": sizes.tolist(),
        "preference_used": _preference_used(estimator),
        # damping="auto" and the n_clusters search can raise the damping.
        "damping_used": float(estimator.damping_),
        "n_iter": int(estimator.n_iter_),
        "converged": bool(estimator.converged_),
        # How a fit that did not converge ended, and what to change.
        "non_convergence": diagnosis,
        "advice": advice,
        "fit_seconds": round(elapsed, 4),
        # ru_maxrss is in KiB on Linux: the whole process, Python included.
        "peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "labels": labels_entry,
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
            "n_neighbors": estimator.n_neighbors if affinity == "nearest_neighbors" else None,
        },
    }


def _write_summary(summary, summary_out, labels_path):
    # One key per line, lists kept on their line (exemplars can be many).
    text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in summary.items())
    text += "\n}"
    if summary_out == "-":
        print(text, flush=True)
    elif summary_out:
        with open(summary_out, "w", encoding="utf-8") as file:
            file.write(text + "\n")
    elif labels_path == "-":
        print(text, file=sys.stderr)
    else:
        print(text, flush=True)


def fit_command(args):
    """``fastap fit`` (errors are turned into one line by the caller)."""
    return run_fit(args)
