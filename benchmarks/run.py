"""Time the same workloads in cygrad and PyTorch, in one process, alternating runs.

    python benchmarks/run.py                      # all workloads, full repeats
    python benchmarks/run.py --quick              # CI-sized: fewer repeats
    python benchmarks/run.py --only matmul_1024   # one workload (repeat --only or use commas)
    python benchmarks/run.py --out docs/_static/bench   # refresh the chart and table the docs show

Workloads registered with ``memory=True`` also get each library's peak memory during one step:
a fresh subprocess per library runs the setup and one warm-up step, resets the kernel's
high-water mark of the resident set (``/proc/self/clear_refs``, Linux) and runs one more step;
the peak is the high-water mark minus the resident set just before that step (cygrad's array
cache, which keeps a step's large arrays for the next one, is emptied first).

For each workload the setup runs once per library, then both step functions are
warmed up and timed alternately (cygrad, torch, torch, cygrad, ... so that a slow
drift of the machine hits both alike). The median of each is reported with the
ratio cygrad/torch and the workload's target. Writes ``results.md`` (Markdown
table), ``results.json`` (all samples) and ``results.png`` (bar chart of ratios)
into ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workloads import load_all  # noqa: E402

# Time budget (seconds, both libraries together) and repeat bounds per workload.
PROFILES = {
    "full": dict(budget=4.0, warmup=3, min_repeats=10, max_repeats=300),
    "quick": dict(budget=0.6, warmup=1, min_repeats=5, max_repeats=50),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few repeats (CI-sized run)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this workload (repeatable, or comma-separated)")
    p.add_argument("--out", default=str(HERE / "results"),
                   help="folder for results.md/.json/.png (default: benchmarks/results)")
    p.add_argument("--threads", type=int, default=2,
                   help="set_num_threads for both libraries (default: 2)")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    p.add_argument("--candidate", default="cygrad",
                   help="module to measure (default: cygrad; '--candidate torch' tests the harness)")
    p.add_argument("--baseline", default="torch", help="module to compare against (default: torch)")
    p.add_argument("--fail-on-target", action="store_true",
                   help="exit with status 1 if any ratio is above its target")
    p.add_argument("--no-plot", action="store_true", help="do not write results.png")
    p.add_argument("--peak-memory", metavar="NAME", help=argparse.SUPPRESS)  # internal: one library, one workload
    return p.parse_args(argv)


# Pause before each timed step: OpenMP runtimes keep their worker threads spinning for a while
# after a parallel region (libgomp: up to GOMP_SPINCOUNT spins), and threads still spinning for
# one library would steal the cores of the other's next step. Both sides get the same pause.
PAUSE = 0.02


def _time_once(fn):
    time.sleep(PAUSE)
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        gc.enable()


def measure(step_c, step_b, profile):
    """Alternate the two steps; return (samples_c, samples_b) in seconds."""
    for _ in range(profile["warmup"]):
        step_c()
        step_b()
    est = _time_once(step_c) + _time_once(step_b)
    repeats = int(profile["budget"] / max(est, 1e-9))
    repeats = max(profile["min_repeats"], min(profile["max_repeats"], repeats))
    samples_c, samples_b = [], []
    for i in range(repeats):
        # ABBA order: c,b then b,c, so neither side always runs first.
        if i % 2 == 0:
            samples_c.append(_time_once(step_c))
            samples_b.append(_time_once(step_b))
        else:
            samples_b.append(_time_once(step_b))
            samples_c.append(_time_once(step_c))
    return samples_c, samples_b


def setup_workload(wl, lib):
    lib.manual_seed(0)
    return wl.setup(lib)


def _proc_status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def peak_memory_child(wl, lib):
    """Print the peak resident-set growth (bytes) during one step of ``wl`` (run in a subprocess)."""
    step = setup_workload(wl, lib)
    step()                                   # warm-up: caches, allocator pools, lazy imports
    gc.collect()
    # cygrad keeps the large arrays of a step for the next one (cygrad._alloc): empty that cache,
    # so that the measured step allocates what it needs, as on its first run
    clear = getattr(getattr(lib, "_alloc", None), "clear", None)
    if clear is not None:
        clear()
        gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                         # reset VmHWM to the current resident set
    before = _proc_status_kib("VmRSS")
    step()
    print(json.dumps(dict(peak_bytes=(_proc_status_kib("VmHWM") - before) * 1024)))


def measure_peak_memory(name, libname, threads):
    """Peak memory of one step of workload ``name`` in library ``libname`` (bytes, or None)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--peak-memory", name, "--candidate", libname,
           "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"\n  peak memory of {name} in {libname} failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"]


def fmt_mib(nbytes):
    return "n/a" if nbytes is None else f"{nbytes / 2**20:.0f}"


def memory_table(rows, cand, base):
    rows = [r for r in rows if r.get("peak_c") is not None or r.get("peak_b") is not None]
    if not rows:
        return ""
    lines = [f"| workload | {cand} peak memory (MiB) | {base} peak memory (MiB) |", "| --- | ---: | ---: |"]
    lines += [f"| {r['name']} | {fmt_mib(r.get('peak_c'))} | {fmt_mib(r.get('peak_b'))} |" for r in rows]
    return "\n".join(lines)


def fmt_ms(seconds):
    ms = 1e3 * seconds
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def fmt_ratio(x):
    """Two decimals, or three significant digits below 0.1 (so that 0.0207 against a target of 0.02 shows)."""
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3g}"


def markdown_table(rows, cand, base):
    lines = [
        f"| workload | {cand} median (ms) | {base} median (ms) | ratio {cand}/{base} | target | result |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['name']} | error | | | {fmt_ratio(r['target'])} | fail: {r['error']} |")
            continue
        lines.append(
            f"| {r['name']} | {fmt_ms(r['median_c'])} | {fmt_ms(r['median_b'])} | {fmt_ratio(r['ratio'])} "
            f"| {fmt_ratio(r['target'])} | {'pass' if r['pass'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def plot(rows, path, cand, base, title_extra):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if not r["error"]]
    if not rows:
        return
    names = [r["name"] for r in rows]
    ratios = [r["ratio"] for r in rows]
    targets = [r["target"] for r in rows]
    colors = ["tab:green" if r["pass"] else "tab:red" for r in rows]
    xs = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows) + 4), 4.0), layout="constrained")
    # Bars grow from parity (1.0) on a log axis: up means slower than the baseline, down faster.
    ax.bar(xs, [v - 1.0 for v in ratios], bottom=1.0, color=colors, width=0.6,
                  label=f"{cand} time / {base} time")
    ax.axhline(1.0, color="black", linewidth=1, label=f"parity with {base}")
    ax.scatter(xs, targets, marker="_", s=900, linewidths=2.5, color="tab:orange", zorder=3, label="target")
    ax.set_yscale("log", base=2)
    lo = min(min(ratios), min(targets), 1.0) / 1.5
    hi = max(max(ratios), max(targets), 1.0) * 1.5
    ax.set_ylim(lo, hi)
    ticks = [t for t in (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 0.75, 1, 1.25, 1.5, 2, 3, 4, 8, 16, 32, 64, 128)
             if lo <= t <= hi]
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(list(xs), [f"{n}\n{fmt_ratio(v)} (target {t:g})" for n, v, t in zip(names, ratios, targets)],
                  fontsize=9)
    ax.set_ylabel(f"median time ratio {cand}/{base} (lower is better)")
    ax.set_title(f"{cand} vs {base}: {title_extra}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    registry = load_all()
    if args.peak_memory:
        lib = importlib.import_module(args.candidate)
        lib.set_num_threads(args.threads)
        peak_memory_child(registry[args.peak_memory], lib)
        return 0
    if args.list:
        for wl in registry.values():
            print(f"{wl.name:20s} target {wl.target:<5g} [{wl.group}] {wl.description}")
        return 0

    names = list(registry)
    if args.only:
        wanted = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in registry]
        if unknown:
            print(f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(registry)}", file=sys.stderr)
            return 2
        names = wanted

    # The baseline is imported first, so that its OpenMP runtime starts with its own defaults.
    try:
        base = importlib.import_module(args.baseline)
    except ImportError as exc:
        print(f"cannot import {args.baseline!r}: {exc}\n(pip install torch==2.13.0)", file=sys.stderr)
        return 2
    try:
        cand = importlib.import_module(args.candidate)
    except ImportError as exc:
        print(f"cannot import {args.candidate!r}: {exc}\n(install it first: pip install .)", file=sys.stderr)
        return 2

    cand.set_num_threads(args.threads)
    base.set_num_threads(args.threads)
    cname, bname = args.candidate, args.baseline
    profile = PROFILES["quick" if args.quick else "full"]
    print(f"{cname} {cand.__version__}: get_num_threads() = {cand.get_num_threads()}")
    print(f"{bname} {base.__version__}: get_num_threads() = {base.get_num_threads()}")
    print(f"python {platform.python_version()}, {platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
          f"profile = {'quick' if args.quick else 'full'}")
    print()

    rows = []
    for name in names:
        wl = registry[name]
        row = dict(name=name, target=wl.target, description=wl.description, error=None)
        print(f"{name:20s} ... ", end="", flush=True)
        try:
            step_c = setup_workload(wl, cand)
            step_b = setup_workload(wl, base)
            samples_c, samples_b = measure(step_c, step_b, profile)
        except Exception as exc:  # a missing op must not hide the other results
            row["error"] = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")[:120]
            print(f"error: {row['error']}")
            rows.append(row)
            continue
        finally:
            step_c = step_b = None
            gc.collect()
        med_c, med_b = statistics.median(samples_c), statistics.median(samples_b)
        row.update(
            median_c=med_c, median_b=med_b, ratio=med_c / med_b, repeats=len(samples_c),
            samples_c=samples_c, samples_b=samples_b,
        )
        row["pass"] = row["ratio"] <= wl.target
        print(f"{cname} {fmt_ms(med_c)} ms, {bname} {fmt_ms(med_b)} ms, ratio {fmt_ratio(row['ratio'])} "
              f"(target {wl.target:g}, {len(samples_c)} repeats)")
        if wl.memory:
            row["peak_c"] = measure_peak_memory(name, cname, args.threads)
            row["peak_b"] = measure_peak_memory(name, bname, args.threads)
            print(f"{'':24s}peak memory of one step: {cname} {fmt_mib(row['peak_c'])} MiB, "
                  f"{bname} {fmt_mib(row['peak_b'])} MiB")
        rows.append(row)

    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    meta = (
        f"{cname} {cand.__version__}, {bname} {base.__version__}, {args.threads} threads each, "
        f"python {platform.python_version()} on {platform.machine()} ({os.cpu_count()} CPUs), "
        f"{'quick' if args.quick else 'full'} profile, {when}"
    )
    table = markdown_table(rows, cname, bname)
    mem = memory_table(rows, cname, bname)
    print()
    print(table)
    if mem:
        print()
        print(mem)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(
        f"{table}\n\nMedian wall time of one iteration, both libraries timed alternately in one process; "
        f"ratio = {cname} / {bname}, lower is better; a workload passes when its ratio is at most its target.  \n"
        f"Measured with `python benchmarks/run.py{' --quick' if args.quick else ''}`: {meta}.\n"
        + (f"\n{mem}\n\nPeak memory: growth of the resident set during one step (after a warm-up step), "
           f"each library in its own process.\n" if mem else "")
    )
    (out / "results.json").write_text(json.dumps(
        dict(meta=dict(candidate=cname, candidate_version=str(cand.__version__), baseline=bname,
                       baseline_version=str(base.__version__), threads=args.threads, quick=args.quick,
                       python=platform.python_version(), machine=platform.machine(),
                       cpu_count=os.cpu_count(), date=when),
             results=rows),
        indent=1,
    ) + "\n")
    if not args.no_plot:
        plot(rows, out / "results.png", cname, bname, f"{args.threads} threads, {when}")
    print(f"\nwrote {out / 'results.md'}, {out / 'results.json'}" + ("" if args.no_plot else f", {out / 'results.png'}"))

    failed = [r["name"] for r in rows if r["error"] or not r["pass"]]
    if args.fail_on_target and failed:
        print(f"above target: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
