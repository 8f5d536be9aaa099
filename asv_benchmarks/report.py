"""The benchmark report: measures, then writes a markdown table and a PNG plot.

    python asv_benchmarks/report.py                       # N = 500 2000 4000 8000 (slow)
    python asv_benchmarks/report.py --sizes 500 2000 --repeats 3
    python asv_benchmarks/report.py --from-json docs/benchmark.json   # redraw only

Writes, by default into docs/:
- benchmark.md: versions, machine, the exact command and the table (as in the README);
- benchmark.json: every measurement (each repeat's time), to redraw without measuring;
- benchmark.png: fit time against N (log-log) for fastap float32 and float64 and
  scikit-learn, and the peak memory of each fit's process.

The measurements are those of compare.py (each fit in its own process, fastap's
kernels warm, medians of --repeats).
"""

import json
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import compare  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "docs")


def _extra_options(parser):
    parser.add_argument("--out-dir", default=DEFAULT_OUT, help="where to write (default docs/)")
    parser.add_argument(
        "--from-json",
        default=None,
        metavar="PATH",
        help="redraw the table and plot from an earlier benchmark.json; measure nothing",
    )


def plot(rows, path, title):
    """Two panels: fit time and peak RSS against N, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({row["N"] for row in rows})
    by = {(row["N"], row["dtype"]): row for row in rows}
    sklearn = [by[n, "float64"] for n in sizes]
    series = [
        ("scikit-learn (float64)", sklearn, "sklearn", "tab:grey", "s"),
        ("fastap float64", [by[n, "float64"] for n in sizes], "fastap", "tab:blue", "o"),
        ("fastap float32", [by[n, "float32"] for n in sizes], "fastap", "tab:orange", "^"),
    ]
    figure, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(11, 4.4))
    for label, points, who, color, marker in series:
        seconds = [point[f"{who}_s"] for point in points]
        memory = [point[f"{who}_rss"] for point in points]
        time_ax.loglog(sizes, seconds, marker=marker, color=color, label=label)
        memory_ax.loglog(sizes, memory, marker=marker, color=color, label=label)
    # Speed-ups: float64's above its point, float32's below.
    for points, offset in ((series[1][1], (-8, 7)), (series[2][1], (4, -12))):
        for point in points:
            time_ax.annotate(
                f"{point['speedup']:.1f}x",
                (point["N"], point["fastap_s"]),
                textcoords="offset points",
                xytext=offset,
                fontsize=7,
            )
    time_ax.set_title("fit time (lower is better; labels: speed-up)")
    time_ax.set_ylabel("seconds")
    memory_ax.set_title(
        "peak RSS of the process\n(~210 MiB of it: Python and its libraries)", fontsize=10
    )
    memory_ax.set_ylabel("MiB")
    from matplotlib.ticker import LogLocator, ScalarFormatter

    for ax in (time_ax, memory_ax):
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("N (samples)")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(rows, header, command):
    """The report as markdown: where it ran, how, and the table."""
    return (
        f"{header}\n\nCommand: `{command}`\n\n{compare.markdown_table(rows)}\n\n"
        f"Raw times (s), every repeat:\n\n```\n{compare.raw_times(rows)}\n```\n"
    )


def main(argv=None):
    args = compare.parse_arguments(__doc__, argv, extra=_extra_options)
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = os.path.join(args.out_dir, "benchmark.json")
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as file:
            saved = json.load(file)
        rows, header, command = saved["rows"], saved["header"], saved["command"]
    else:
        header = compare.versions(args.n_jobs)
        command = "python asv_benchmarks/report.py " + shlex.join(
            argv if argv is not None else sys.argv[1:]
        )
        print(header + "\n", flush=True)
        rows = []
        for row in compare.measure(args.sizes, args.repeats, args.n_jobs, args.sklearn_repeats):
            rows.append(row)
            print(compare._format_row(row, header=len(rows) == 1), flush=True)
        with open(json_path, "w", encoding="utf-8") as file:
            json.dump({"header": header, "command": command.strip(), "rows": rows}, file, indent=1)
    command = command.strip()
    with open(os.path.join(args.out_dir, "benchmark.md"), "w", encoding="utf-8") as file:
        file.write(markdown(rows, header, command))
    png = os.path.join(args.out_dir, "benchmark.png")
    plot(rows, png, header.replace("\n", "; "))
    print(
        f"\nwrote {args.out_dir}/benchmark.md, benchmark.png"
        + ("" if args.from_json else ", benchmark.json")
    )


if __name__ == "__main__":
    main()
