"""Read training logs into ``{series name: (steps, values)}``.

Three formats: TensorBoard event files (a file, or a folder searched recursively; each
folder holding event files is a run, and its path relative to the given folder prefixes
the tags: ``train/epoch_loss``), CSV (a header with a step column and one column per
metric; empty cells are skipped) and JSON lines (one object per line with a step key;
nested objects are flattened with ``/``). Steps come back sorted and unique (the last
value logged for a step wins, as after a resumed run), as float64 arrays.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genmetrics.errors import InputError

#: Column or key names taken as the step, in order of preference (``epoch`` last: Keras's
#: CSVLogger writes no step).
STEP_NAMES = ("step", "global_step", "_step", "iteration", "iter", "it", "trainer/global_step",
              "epoch")
#: Numeric columns that are bookkeeping, not metrics: not made into series.
NOT_METRICS = frozenset({"wall_time", "walltime", "timestamp", "time", "_timestamp",
                         "_runtime", "epoch", "relative_time"})
EVENT_MARKER = "tfevents"
CSV_SUFFIXES = (".csv", ".tsv")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")

Series = tuple[np.ndarray, np.ndarray]


@dataclass
class Logs:
    """What :func:`read_logs` found: the series, the format, and notes (columns left out)."""

    series: dict[str, Series]
    format: str
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _number(value: object) -> float | None:
    """``'1.5'`` -> 1.5, ``'nan'`` -> nan, ``3`` -> 3.0; ``'abc'``, ``True``, ``[1]`` -> None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _finish(points: dict[str, dict[float, float]]) -> dict[str, Series]:
    """Per series ``{step: value}`` -> sorted ``(steps, values)`` float64 arrays."""
    out: dict[str, Series] = {}
    for name, by_step in points.items():
        if not by_step:
            continue
        steps = np.array(sorted(by_step), dtype=np.float64)
        out[name] = (steps, np.array([by_step[s] for s in steps], dtype=np.float64))
    return out


def _step_key(names: Iterable[str]) -> str | None:
    lowered = {n.strip().lower(): n for n in names}
    for candidate in STEP_NAMES:
        if candidate in lowered:
            return lowered[candidate]
    return None


def read_csv(path: Path) -> Logs:
    """A CSV (or tab-separated) log: a ``step`` column and one column per metric.

    A column whose cells are all text is left out (listed in ``notes``); a text cell in a
    numeric column is an :class:`InputError` naming the line.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("step,loss,val_loss\\n0,2.0,\\n10,1.5,1.7\\n")
    >>> logs = read_csv(p)
    >>> sorted(logs.series), logs.series["val_loss"][0].tolist()
    (['loss', 'val_loss'], [10.0])
    """
    text = _read_text(path)
    dialect: type[csv.Dialect] | csv.Dialect = csv.excel_tab if path.suffix == ".tsv" else csv.excel
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    except csv.Error:
        pass
    rows = list(csv.reader(text.splitlines(), dialect))
    header = [h.strip() for h in rows[0]]
    step_col = _step_key(header)
    if step_col is None:
        raise InputError(f"{path}: no step column (header: {', '.join(header)}); name one "
                         f"of {', '.join(STEP_NAMES[:3])}")
    if len(rows) < 2:
        raise InputError(f"{path}: a header but no data rows")
    step_at = header.index(step_col)
    cells: dict[str, list[tuple[str, float, object]]] = {
        h: [] for i, h in enumerate(header) if i != step_at and h and h.lower() not in NOT_METRICS
    }
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= step_at or (step := _number(row[step_at].strip())) is None \
                or not math.isfinite(step):
            got = row[step_at] if len(row) > step_at else ""
            raise InputError(f"{path}:{line_no}: step {got!r} is not a number")
        for i, cell in enumerate(row):
            name = header[i] if i < len(header) else ""
            if name in cells and cell.strip():
                cells[name].append((f"{path}:{line_no}", step, cell.strip()))
    return _from_cells(path, cells, "csv")


def _from_cells(path: Path, cells: dict[str, list[tuple[str, float, object]]], fmt: str) -> Logs:
    points: dict[str, dict[float, float]] = {}
    notes: list[str] = []
    for name, entries in cells.items():
        values = [_number(text) for _, _, text in entries]
        if entries and all(v is None for v in values):
            notes.append(f"{name}: not numeric, left out")
            continue
        for (where, step, text), value in zip(entries, values, strict=True):
            if value is None:
                raise InputError(f"{where}: {name} = {text!r} is not a number (a metric "
                                 "holds numbers, nan or inf only)")
            points.setdefault(name, {})[step] = value
    series = _finish(points)
    if not series:
        raise InputError(f"{path}: no numeric metric besides the step")
    return Logs(series, fmt, [str(path)], notes)


def _flatten(obj: dict, prefix: str = "") -> Iterable[tuple[str, object]]:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}/")
        else:
            yield name, value


def _json_records(path: Path, text: str) -> list[tuple[str, object]]:
    """(where, record) pairs: one per line, or, for a .json file holding one document, its
    list of objects or its ``log_history`` (Hugging Face ``trainer_state.json``)."""
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("log_history"), list):
            doc = doc["log_history"]
        if isinstance(doc, list):
            return [(f"{path}: record {i}", r) for i, r in enumerate(doc, start=1)]
    records: list[tuple[str, object]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{line_no}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{line_no}: not JSON ({exc.msg}); a .jsonl log holds "
                             "one JSON object per line") from None
    return records


def read_jsonl(path: Path) -> Logs:
    """A JSON-lines log: ``{"step": 10, "loss": 1.5, "val": {"loss": 1.7}}`` per line
    (nested objects flattened with ``/``); a ``.json`` file may instead hold a list of
    such objects or a Hugging Face ``trainer_state.json`` (its ``log_history``).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "log.jsonl"
    >>> _ = p.write_text('{"step": 0, "loss": 2.0}\\n{"step": 5, "val": {"loss": 1.0}}\\n')
    >>> sorted(read_jsonl(p).series)
    ['loss', 'val/loss']
    """
    text = _read_text(path)
    cells: dict[str, list[tuple[str, float, object]]] = {}
    for where, record in _json_records(path, text):
        if not isinstance(record, dict):
            raise InputError(f"{where}: not a JSON object")
        flat = dict(_flatten(record))
        key = _step_key(flat)
        if key is None:
            raise InputError(f"{where}: no step key (keys: {', '.join(flat)}); add one of "
                             f"{', '.join(STEP_NAMES[:3])}")
        step = flat.pop(key)
        if isinstance(step, bool) or not isinstance(step, int | float) \
                or not math.isfinite(step):
            raise InputError(f"{where}: step {step!r} is not a number")
        for name, value in flat.items():
            if name.lower() in NOT_METRICS or value is None:
                continue
            cells.setdefault(name, []).append((where, float(step), value))
    if not cells:
        raise InputError(f"{path}: no metric values (every record holds only a step)")
    return _from_cells(path, cells, "jsonl")


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; give a CSV, a JSON-lines file or "
                         "TensorBoard event files") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not text.strip():
        raise InputError(f"{path}: the file is empty")
    return text


def _scalar_points(accumulator) -> dict[str, dict[float, float]]:
    """Scalars of a loaded EventAccumulator: v1 ``simple_value`` summaries and v2 tensor
    summaries of the scalars plugin (what ``tf.summary.scalar`` writes)."""
    from tensorboard.util import tensor_util

    points: dict[str, dict[float, float]] = {}
    tags = accumulator.Tags()
    for tag in tags["scalars"]:
        points[tag] = {float(e.step): float(e.value) for e in accumulator.Scalars(tag)}
    for tag in tags["tensors"]:
        meta = accumulator.SummaryMetadata(tag)
        if meta.plugin_data.plugin_name != "scalars":
            continue
        by_step = points.setdefault(tag, {})
        for event in accumulator.Tensors(tag):
            array = tensor_util.make_ndarray(event.tensor_proto)
            if array.size == 1:
                by_step[float(event.step)] = float(array.reshape(()))
    return points


def read_event_files(path: Path) -> Logs:
    """TensorBoard event files: one file, or every run folder under ``path``.

    >>> read_event_files(Path("/nonexistent"))
    Traceback (most recent call last):
    ...
    genmetrics.errors.InputError: /nonexistent: no TensorBoard event files (events.out.tfevents.*)
    """
    from tensorboard.backend.event_processing import event_accumulator as ea

    if path.is_file():
        runs = {"": [path]}
        root = path.parent
    else:
        root = path
        runs = {}
        for file in sorted(path.rglob(f"*{EVENT_MARKER}*")) if path.is_dir() else []:
            if file.is_file():
                run = file.parent.relative_to(path).as_posix()
                runs.setdefault("" if run == "." else run, []).append(file)
    if not runs:
        raise InputError(f"{path}: no TensorBoard event files (events.out.tfevents.*)")
    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # purge notices of restarts
    points: dict[str, dict[float, float]] = {}
    files: list[str] = []
    for run, run_files in runs.items():
        target = run_files[0] if path.is_file() else root / run
        try:
            accumulator = ea.EventAccumulator(
                str(target), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0}).Reload()
            found = _scalar_points(accumulator)
        except Exception as exc:  # corrupt protobufs surface as many exception types
            raise InputError(f"{target}: unreadable TensorBoard event file ({exc})") from None
        files.extend(str(f) for f in run_files)
        for tag, by_step in found.items():
            points[f"{run}/{tag}" if run else tag] = by_step
    series = _finish(points)
    if not series:
        raise InputError(f"{path}: no scalar series in the event files (empty or unreadable "
                         "files, or only images and histograms)")
    return Logs(series, "tensorboard", files)


def _kind(file: Path) -> str | None:
    if EVENT_MARKER in file.name:
        return "tensorboard"
    if file.suffix.lower() in CSV_SUFFIXES:
        return "csv"
    if file.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    return None


def read_logs(path: Path) -> Logs:
    """Read a log file or a folder of logs (event files first; else every CSV/JSONL in it,
    each file's stem prefixing its series when there are several).

    >>> read_logs(Path("/nonexistent/run"))
    Traceback (most recent call last):
    ...
    genmetrics.errors.InputError: /nonexistent/run: no such file or folder
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        kind = _kind(path)
        if kind is None:
            raise InputError(f"{path}: not a log genmetrics reads; give TensorBoard event "
                             "files (events.out.tfevents.*), a .csv or a .jsonl file")
        return {"tensorboard": read_event_files, "csv": read_csv, "jsonl": read_jsonl}[kind](path)
    if any(f.is_file() for f in path.rglob(f"*{EVENT_MARKER}*")):
        return read_event_files(path)
    tables = sorted(f for f in path.rglob("*") if f.is_file() and _kind(f) in ("csv", "jsonl"))
    if not tables:
        raise InputError(f"{path}: no logs inside (TensorBoard event files, .csv or .jsonl)")
    if len(tables) == 1:
        return read_logs(tables[0])
    merged = Logs({}, "mixed", [])
    formats = set()
    for table in tables:
        part = read_logs(table)
        prefix = re.sub(r"\.[^.]+$", "", table.relative_to(path).as_posix())
        merged.series.update({f"{prefix}/{k}": v for k, v in part.series.items()})
        merged.files.extend(part.files)
        merged.notes.extend(f"{prefix}/{n}" for n in part.notes)
        formats.add(part.format)
    merged.format = formats.pop() if len(formats) == 1 else "mixed"
    return merged
