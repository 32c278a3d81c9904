"""``genmetrics logs``: read training logs and say what the curves show.

Reads TensorBoard event files, CSV or JSON-lines logs (:mod:`genmetrics.logs.readers`),
runs the checks of :mod:`genmetrics.logs.analysis` (loss still falling or plateaued,
train/validation gap trend, learning-rate schedule, gradient-norm spikes, explosion or
collapse) and writes one PNG per series plus ``summary.json``
(:mod:`genmetrics.logs.plots`).

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
from genmetrics.logs.readers import Logs, read_logs

__all__ = ["FAIL_ON", "Thresholds", "analyze_logs", "cli_run", "failed_checks", "findings_table",
           "parse_fail_on", "print_findings", "read_logs", "summarize",
           "write_outputs"]

SCHEMA = "genmetrics-logs/1"


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


def analyze_logs(path: Path, *, window: int | None = None,
                 roles: Mapping[str, str | None] | None = None,
                 thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """Read the logs at ``path`` (a file or a folder) and run every check.

    ``window``: points in the last window (default 20% of each series, at least 10).
    ``roles``: series names for ``train_loss``, ``val_loss``, ``lr``, ``grad_norm`` when
    detection by name fails. Returns the summary: ``roles`` (the series used for each
    report and whether it was given or detected), ``series`` (one line of numbers each),
    ``findings`` (check, series, verdict, flagged, message, statistics, thresholds, steps)
    and ``flags`` (the flagged verdicts).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("step,loss\\n" + "".join(f"{i},{1 / (i + 1)}\\n" for i in range(40)))
    >>> analyze_logs(p)["roles"]["train_loss"]
    {'series': 'loss', 'how': 'detected'}
    """
    return summarize(read_logs(Path(path)), path, window=window, roles=roles,
                     thresholds=thresholds)


def write_outputs(summary: dict[str, Any], out_dir: Path, *,
                  series: Mapping[str, Series] | None = None,
                  json_path: Path | None = None) -> list[Path]:
    """Write one PNG per series and ``summary.json`` into ``out_dir`` (and the summary to
    ``json_path`` too, if given); records each plot under ``summary["series"][name]["plot"]``.
    ``series``: the data (read again from ``summary["source"]`` when not given).
    Returns the files written.

    >>> import tempfile, numpy as np
    >>> logs = Logs({"loss": (np.arange(20.0), np.linspace(2, 1, 20))}, "csv")
    >>> out = Path(tempfile.mkdtemp())
    >>> [p.name for p in write_outputs(summarize(logs, "x.csv"), out, series=logs.series)]
    ['loss.png', 'summary.json']
    """
    from genmetrics.io.common import write_text_atomically
    from genmetrics.logs.plots import plot_name, plot_series

    if series is None:
        series = read_logs(Path(summary["source"])).series
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
        file = plot_series(name, steps, values, Path(out_dir) / plot_name(name, taken),
                           role=role_of.get(name), findings=by_series.get(name, []),
                           context=context)
        if name in summary["series"]:
            summary["series"][name]["plot"] = file.name
        written.append(file)
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
    """The findings (``check: verdict``) that ``fail_on`` turns into a failure.

    >>> failed_checks({"findings": [{"check": "loss trend", "verdict": "plateau",
    ...                              "flagged": False}]}, {"plateau"})
    ['loss trend: plateau']
    """
    fail_on = set(fail_on)
    return [f"{f['check']}: {f['verdict']}" for f in summary["findings"]
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
    in full are in ``summary.json``.

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
    logs = read_logs(Path(path))
    summary = summarize(logs, path, window=window, roles=roles)
    to_stdout = json_out is not None and str(json_out) == "-"
    write_outputs(summary, out_dir, series=logs.series,
                  json_path=None if to_stdout or json_out is None else json_out)
    if to_stdout:
        sys.stdout.write(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    console = Console(stderr=to_stdout)
    if not to_stdout:
        print_findings(summary, console)
        console.print(f"{len(logs.series)} plot(s) and summary.json in {out_dir}",
                      highlight=False)
    failed = failed_checks(summary, wanted)
    if failed:
        Console(stderr=True).print(f"[red]--fail-on: {'; '.join(failed)}[/]", highlight=False)
        return 1
    return 0
