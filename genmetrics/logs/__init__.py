"""``genmetrics logs``: read training logs and say what the curves show.

Reads TensorBoard event files, CSV or JSON-lines logs (:mod:`genmetrics.logs.readers`),
runs the checks of :mod:`genmetrics.logs.analysis` (loss still falling or plateaued,
train/validation gap trend, learning-rate schedule, gradient-norm spikes, explosion or
collapse) and writes one PNG per series plus ``summary.json``
(:mod:`genmetrics.logs.plots`). A folder holding several runs (``tb/exp1``, ``tb/exp2``)
gets one analysis per run (:func:`summarize_runs`).

Example::

    summary = analyze_logs(Path("runs/exp1"))
    write_outputs(summary, Path("logs_report"))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.logs.analysis import (
    DEFAULT_THRESHOLDS,
    FAIL_ON,
    Series,
    Thresholds,
    analyze_series,
)
from genmetrics.logs.readers import Logs, merge_runs, read_logs, read_runs

__all__ = ["FAIL_ON", "Thresholds", "analyze_logs", "cli_run", "failed_checks", "findings_table",
           "parse_fail_on", "print_findings", "read_logs", "read_runs", "run_roles",
           "summarize", "summarize_runs", "write_outputs"]

#: the summary of one run (each run's part of a summary of several runs too)
SCHEMA = "genmetrics-logs/1"
#: the summary of several runs: ``runs`` (one ``genmetrics-logs/1`` summary each, with
#: ``run``) instead of ``roles`` and ``series`` at the top (see :func:`summarize_runs`)
SCHEMA_RUNS = "genmetrics-logs/2"


def summarize(logs: Logs, source: Path | str, *, window: int | None = None,
              roles: Mapping[str, str | None] | None = None,
              thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """The JSON summary of already-read ``logs`` (see :func:`analyze_logs`).

    >>> import numpy as np
    >>> logs = Logs({"loss": (np.arange(50.0), np.linspace(2, 1, 50))}, "csv")
    >>> summarize(logs, "log.csv")["findings"][0]["verdict"]
    'falling'
    """
    summary = analyze_series(logs.series, window=window, roles=roles, thresholds=thresholds)
    return {"schema": SCHEMA, "source": str(source), "format": logs.format,
            "files": list(logs.files), "notes": list(logs.notes), **summary}


def summarize_runs(runs: Mapping[str, Logs], notes: Iterable[str], source: Path | str, *,
                   window: int | None = None, roles: Mapping[str, str | None] | None = None,
                   thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """The summary of the runs of :func:`read_runs`. One run: :func:`summarize` of it.
    Several: each analysed on its own, under ``runs`` (a summary each, with ``run``: its
    path relative to ``source``); ``findings`` holds every run's findings (each with its
    ``run``) and ``flags`` the flagged verdicts of them all; its schema tag is
    ``genmetrics-logs/2`` (each run's part keeps ``genmetrics-logs/1``). ``roles`` are
    resolved in each run by :func:`run_roles` (``exp1/Loss/train`` names exp1's series).

    >>> import numpy as np
    >>> one = Logs({"loss": (np.arange(50.0), np.linspace(2, 1, 50))}, "csv")
    >>> out = summarize_runs({"exp1": one, "exp2": one}, [], "tb")
    >>> [(r["run"], r["source"]) for r in out["runs"]], out["findings"][0]["run"]
    ([('exp1', 'tb/exp1'), ('exp2', 'tb/exp2')], 'exp1')
    """
    notes = list(notes)
    if len(runs) == 1:
        merged = merge_runs(dict(runs), notes)
        (run,) = runs
        if run and roles:  # the series carry the run's path: a name without it is taken
            roles = {role: f"{run}/{name}" if name and name not in merged.series
                     and f"{run}/{name}" in merged.series else name
                     for role, name in roles.items()}
        return summarize(merged, source, window=window, roles=roles, thresholds=thresholds)
    per_run = run_roles(runs, roles)
    parts = []
    for run, logs in runs.items():
        chosen, role_notes = per_run[run]
        part = summarize(logs, logs.source or Path(source, run), window=window, roles=chosen,
                         thresholds=thresholds)
        part["notes"] += role_notes
        parts.append({"run": run or ".", **part})
    formats = {p["format"] for p in parts}
    return {"schema": SCHEMA_RUNS, "source": str(source),
            "format": formats.pop() if len(formats) == 1 else "mixed",
            "files": [f for p in parts for f in p["files"]], "notes": notes, "window": window,
            "runs": parts,
            "findings": [{"run": p["run"], **f} for p in parts for f in p["findings"]],
            "flags": sorted({flag for p in parts for flag in p["flags"]}),
            "thresholds": parts[0]["thresholds"]}


def run_roles(runs: Mapping[str, Logs], roles: Mapping[str, str | None] | None
              ) -> dict[str, tuple[dict[str, str | None], list[str]]]:
    """The series named for each role (``--loss`` ...), resolved in each of several runs:
    ``{run: (roles, notes)}``.

    A name prefixed by a run's path (``exp1/Loss/train``, as a merged view of the runs
    shows it) applies to that run only; the other runs detect the role. An unprefixed
    name applies to every run that has it; a run without it detects the role instead,
    with a note. A name that no run has is a :class:`~genmetrics.errors.UsageError`.

    >>> import numpy as np
    >>> s = (np.arange(3.0), np.ones(3))
    >>> runs = {"exp1": Logs({"nll": s, "loss": s}, "csv"), "exp2": Logs({"loss": s}, "csv")}
    >>> out = run_roles(runs, {"train_loss": "exp1/nll"})
    >>> out["exp1"][0]["train_loss"], out["exp2"][0]["train_loss"]
    ('nll', None)
    >>> out = run_roles(runs, {"train_loss": "nll"})
    >>> out["exp2"]
    ({'train_loss': None}, ["--loss 'nll': no such series in this run; detected instead"])
    """
    import difflib

    from genmetrics.logs.analysis import ROLE_OPTIONS

    out: dict[str, tuple[dict[str, str | None], list[str]]] = {run: ({}, []) for run in runs}
    for role, name in (roles or {}).items():
        if not name:
            continue
        option = ROLE_OPTIONS.get(role, role)
        owner = next((run for run in runs if run and name.startswith(f"{run}/")
                      and name[len(run) + 1:] in runs[run].series), None)
        if owner is not None:  # exp1/Loss/train: that run's Loss/train
            for run in runs:
                out[run][0][role] = name[len(owner) + 1:] if run == owner else None
            continue
        having = [run for run in runs if name in runs[run].series]
        if not having:
            known = sorted({n for logs in runs.values() for n in logs.series}
                           | {f"{run}/{n}" for run, logs in runs.items() if run
                              for n in logs.series})
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"{option} {name!r}: no such series in any of the {len(runs)} "
                             f"runs{hint} (a series of one run only: RUN/SERIES)")
        for run in runs:
            if run in having:
                out[run][0][role] = name
            else:
                out[run][0][role] = None
                out[run][1].append(f"{option} {name!r}: no such series in this run; "
                                   "detected instead")
    return out


def analyze_logs(path: Path, *, window: int | None = None,
                 roles: Mapping[str, str | None] | None = None,
                 thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """Read the logs at ``path`` (a file or a folder) and run every check.

    ``window``: points in the last window (default 20% of each series, at least 10).
    ``roles``: series names for ``train_loss``, ``val_loss``, ``lr``, ``grad_norm`` when
    detection by name fails. Returns the summary: ``roles`` (the series used for each
    report and whether it was given or detected), ``series`` (one line of numbers each),
    ``findings`` (check, series, verdict, flagged, message, statistics, thresholds, steps)
    and ``flags`` (the flagged verdicts). A folder of several runs: one summary per run
    under ``runs`` (see :func:`summarize_runs`).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("step,loss\\n" + "".join(f"{i},{1 / (i + 1)}\\n" for i in range(40)))
    >>> analyze_logs(p)["roles"]["train_loss"]
    {'series': 'loss', 'how': 'detected'}
    """
    runs, notes = read_runs(Path(path))
    return summarize_runs(runs, notes, path, window=window, roles=roles,
                          thresholds=thresholds)


def _plot_run(summary: dict[str, Any], folder: Path, series: Mapping[str, Series],
              shown: str = "") -> list[Path]:
    """One PNG per series of one run's ``summary`` into ``folder``; each recorded under
    ``summary["series"][name]["plot"]`` (``shown`` + the file name)."""
    from genmetrics.logs.plots import plot_name, plot_series

    role_of = {v["series"]: role for role, v in summary["roles"].items() if v["series"]}
    train, val = summary["roles"]["train_loss"]["series"], summary["roles"]["val_loss"]["series"]
    by_series: dict[str, list[dict]] = {}
    for f in summary["findings"]:
        target = val if f["check"] == "train/val gap" and val else f["series"]
        by_series.setdefault(target, []).append(f)
    written: list[Path] = []
    taken: set[str] = {"summary.json"}
    for name, (steps, values) in series.items():
        context = (train, *series[train]) if name == val and train in series else None
        file = plot_series(name, steps, values, folder / plot_name(name, taken),
                           role=role_of.get(name), findings=by_series.get(name, []),
                           context=context)
        if name in summary["series"]:
            summary["series"][name]["plot"] = shown + file.name
        written.append(file)
    return written


def write_outputs(summary: dict[str, Any], out_dir: Path, *,
                  series: Mapping[str, Any] | None = None,
                  json_path: Path | None = None) -> list[Path]:
    """Write one PNG per series and ``summary.json`` into ``out_dir`` (and the summary to
    ``json_path`` too, if given); records each plot under ``summary["series"][name]["plot"]``.
    ``series``: the data (read again from ``summary["source"]`` when not given). A summary
    of several runs puts each run's PNGs in a sub-folder named by the run (``series``:
    ``{run: {name: data}}``). Returns the files written.

    >>> import tempfile, numpy as np
    >>> logs = Logs({"loss": (np.arange(20.0), np.linspace(2, 1, 20))}, "csv")
    >>> out = Path(tempfile.mkdtemp())
    >>> [p.name for p in write_outputs(summarize(logs, "x.csv"), out, series=logs.series)]
    ['loss.png', 'summary.json']
    """
    from genmetrics.io.common import write_text_atomically

    written: list[Path] = []
    if "runs" in summary:
        if series is None:
            series = {run or ".": logs.series
                      for run, logs in read_runs(Path(summary["source"]))[0].items()}
        for part in summary["runs"]:
            run = part["run"]
            shown = "" if run == "." else f"{run}/"
            written += _plot_run(part, Path(out_dir) / shown, series[run], shown)
    else:
        if series is None:
            series = read_logs(Path(summary["source"])).series
        written += _plot_run(summary, Path(out_dir), series)
    text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
    write_text_atomically(Path(out_dir) / "summary.json", text)
    written.append(Path(out_dir) / "summary.json")
    if json_path is not None:
        write_text_atomically(json_path, text)
        written.append(Path(json_path))
    return written


def parse_fail_on(text: str | None) -> set[str]:
    """``"overfitting,exploding"`` -> the verdicts that fail the run; ``"any"``: every
    flagged one.

    >>> sorted(parse_fail_on("exploding, overfitting"))
    ['exploding', 'overfitting']
    """
    if not text:
        return set()
    names = {t.strip().lower() for t in text.split(",") if t.strip()}
    unknown = names - set(FAIL_ON) - {"any"}
    if unknown:
        raise UsageError(f"--fail-on: unknown verdict(s) {', '.join(sorted(unknown))}; choose "
                         f"from any, {', '.join(FAIL_ON)}")
    return names


def failed_checks(summary: Mapping[str, Any], fail_on: Iterable[str]) -> list[str]:
    """The findings (``check: verdict``, after ``run: `` in a summary of several runs)
    that ``fail_on`` turns into a failure.

    >>> failed_checks({"findings": [{"check": "loss trend", "verdict": "plateau",
    ...                              "flagged": False}]}, {"plateau"})
    ['loss trend: plateau']
    """
    fail_on = set(fail_on)
    return [(f"{f['run']}: " if "run" in f else "") + f"{f['check']}: {f['verdict']}"
            for f in summary["findings"]
            if f["verdict"] in fail_on or ("any" in fail_on and f["flagged"])]


def findings_table(summary: Mapping[str, Any]):
    """A narrow rich table of the findings: number, check, series, verdict (the sentence of
    each finding is printed below it by :func:`print_findings`).

    >>> findings_table({"source": "x", "findings": []}).row_count
    0
    """
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"genmetrics logs: {escape(str(summary['source']))}",
                  title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("series", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    for i, f in enumerate(summary["findings"], 1):
        style = ("red" if f["flagged"] else "dim" if f["verdict"] in ("not available",
                                                                      "too short") else "green")
        table.add_row(str(i), escape(f["check"]), escape(f["series"]),
                      f"[{style}]{escape(f['verdict'])}[/]")
    return table


def print_findings(summary: Mapping[str, Any], console: Any) -> None:
    """Print the findings for a terminal, readable at 80 columns: the narrow table, then one
    line per finding (its sentence, numbered as in the table) with its statistic dimmed on
    the line below, then the series used and the readers' notes. Statistics and thresholds
    in full are in ``summary.json``. Several runs: one such section per run.

    >>> from rich.console import Console
    >>> print_findings({"source": "log.csv", "findings": [], "roles": {}, "notes": []},
    ...                Console(width=80, color_system=None))  # doctest: +NORMALIZE_WHITESPACE
    genmetrics logs: log.csv
    ┏━━━┳━━━━━━━┳━━━━━━━━┳━━━━━━━━━┓
    ┃ # ┃ check ┃ series ┃ verdict ┃
    ┡━━━╇━━━━━━━╇━━━━━━━━╇━━━━━━━━━┩
    └───┴───────┴────────┴─────────┘
    series used: none recognised
    """
    from rich.markup import escape
    from rich.table import Table

    if "runs" in summary:
        for i, part in enumerate(summary["runs"], 1):
            console.print(f"{'' if i == 1 else chr(10)}[bold]run {i}/{len(summary['runs'])}: "
                          f"{escape(part['run'])}[/]", highlight=False)
            print_findings(part, console)
        console.print(f"{len(summary['runs'])} runs: "
                      f"{escape(', '.join(p['run'] for p in summary['runs']))}",
                      highlight=False)
        for note in summary["notes"]:
            console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        return
    console.print(findings_table(summary))
    findings = summary["findings"]
    if findings:
        # a borderless grid: a sentence longer than the terminal wraps under itself, never
        # inside a narrow cell
        grid = Table.grid(padding=(0, 1))
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column(overflow="fold")
        for i, f in enumerate(findings, 1):
            grid.add_row(f"{i}.", escape(f["message"]))
            if f.get("statistic"):
                grid.add_row("", f"[dim]{escape(f['statistic'])}[/]")
        console.print("findings:", highlight=False)
        console.print(grid, highlight=False)
    used = ", ".join(f"{role.replace('_', ' ')} = {v['series']} ({v['how']})"
                     for role, v in summary["roles"].items() if v["series"])
    console.print(f"series used: {escape(used) or 'none recognised'}", highlight=False)
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


def cli_run(path: Path, *, out_dir: Path, window: int | None, json_out: Path | None,
            fail_on: str | None, roles: Mapping[str, str | None]) -> int:
    """What ``genmetrics logs`` does; returns the exit code (1 when ``fail_on`` matched).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "log.csv").write_text("step,loss\\n" + "".join(f"{i},1\\n" for i in range(9)))
    >>> cli_run(d / "log.csv", out_dir=d / "out", window=None, json_out=Path("-"),
    ...         fail_on="plateau", roles={})  # doctest: +ELLIPSIS
    {...
    1
    """
    import sys

    from rich.console import Console

    wanted = parse_fail_on(fail_on)
    if window is not None and window < 3:
        raise UsageError(f"--window must be at least 3 points; got {window}")
    runs, notes = read_runs(Path(path))
    summary = summarize_runs(runs, notes, path, window=window, roles=roles)
    to_stdout = json_out is not None and str(json_out) == "-"
    series: Mapping[str, Any] = ({run or ".": logs.series for run, logs in runs.items()}
                                 if "runs" in summary else merge_runs(runs).series)
    written = write_outputs(summary, out_dir, series=series,
                            json_path=None if to_stdout or json_out is None else json_out)
    if to_stdout:
        sys.stdout.write(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    console = Console(stderr=to_stdout)
    if not to_stdout:
        print_findings(summary, console)
        where = " (a folder per run)" if "runs" in summary else ""
        plots = sum(1 for p in written if p.suffix == ".png")
        console.print(f"{plots} plot(s) and summary.json in {out_dir}{where}",
                      highlight=False)
    failed = failed_checks(summary, wanted)
    if failed:
        Console(stderr=True).print(f"[red]--fail-on: {'; '.join(failed)}[/]", highlight=False)
        return 1
    return 0
