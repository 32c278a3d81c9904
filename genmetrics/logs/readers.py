"""Read training logs into ``{series name: (steps, values)}``, one run at a time.

Three formats: TensorBoard event files (a file, or a folder searched recursively; each
folder holding event files belongs to a run, see :func:`read_runs`), CSV (a header with a
step column and one column per metric) and JSON lines (one object per line with a step
key; nested objects are flattened with ``/``). Steps come back sorted and unique (the
last value logged for a step wins, as after a resumed run), as float64 arrays.

In CSV and JSON rows an empty cell (a missing key, ``null``) is no value, and a ``nan``
that is only a placeholder is not one either (:func:`placeholders`): train and validation
rows sharing a file leave each other's columns empty or write ``nan`` there.
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
#: Folder (or file) names that hold one split of a run, as Keras writes ``train/`` and
#: ``validation/`` side by side: they belong to the run above them, not a run of their own.
SPLITS = frozenset({"train", "training", "val", "valid", "validation", "eval", "evaluation",
                    "test", "dev", "holdout"})

Series = tuple[np.ndarray, np.ndarray]


@dataclass
class Logs:
    """What :func:`read_logs` found: the series, the format, and notes (columns left out);
    ``source``: the file or folder read (one run's, from :func:`read_runs`)."""

    series: dict[str, Series]
    format: str
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""


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
    columns = [h for i, h in enumerate(header)
               if i != step_at and h and h.lower() not in NOT_METRICS]
    table: list[Row] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= step_at or (step := _number(row[step_at].strip())) is None \
                or not math.isfinite(step):
            got = row[step_at] if len(row) > step_at else ""
            raise InputError(f"{path}:{line_no}: step {got!r} is not a number")
        cells = {header[i]: cell.strip() for i, cell in enumerate(row)
                 if i < len(header) and header[i] in columns and cell.strip()}
        table.append((f"{path}:{line_no}", step, cells))
    return _from_rows(path, columns, table, "csv")


#: One row of a CSV or JSON log: where it is (``file:line``), its step, and its cells
#: (column -> text or JSON value; an empty cell is absent).
Row = tuple[str, float, dict[str, object]]


def placeholders(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Which ``nan`` cells of a table of rows are placeholders, not values (``True``).

    ``values``: (rows, columns) floats in the order logged; ``present``: the cells that
    hold something (an empty cell is no value anyway). ``inf`` is always a value. A
    ``nan`` in column C is a placeholder when

    - its row is of another kind: the row holds a number (finite or inf) in a column
      that never holds one in the same row as C (a validation row's train columns, a
      train row's validation columns, a learning-rate row); or
    - C is sparse among the rows left (``nan`` in at least as many of them as numbers,
      e.g. validation every N train rows), the ``nan`` comes before C's last number, or
      after it but in a block no longer than the longest block of ``nan`` before it (C's
      own rhythm), and its row holds a number in another column (a row that logs
      something else; a row holding nothing but ``nan`` logs C, so its ``nan`` is C's).

    Every other ``nan`` is the run's own value: a loss that turns ``nan`` in the rows
    that log it (with the learning rate beside it, or alone) has diverged. A column that
    never holds a number keeps its ``nan`` here: nothing shows which rows log it
    (:func:`read_csv` and :func:`read_jsonl` leave such a column out, with a note).

    >>> nan = float("nan")
    >>> v = np.array([[1.0, nan], [0.9, nan], [nan, 1.2], [0.8, nan], [nan, 1.1]])
    >>> placeholders(v, np.ones_like(v, bool))[:, 0].tolist()  # rows 2, 4 log val only
    [False, False, True, False, True]
    >>> placeholders(np.array([[1.0], [0.9], [nan], [nan]]), np.ones((4, 1), bool)).any()
    np.False_
    >>> sparse = np.array([[1.0], [nan], [nan], [0.9], [nan], [nan]])  # nothing else logged
    >>> placeholders(sparse, np.ones(sparse.shape, bool)).any()
    np.False_
    """
    nan = present & np.isnan(values)
    number = present & ~np.isnan(values)
    out = np.zeros(values.shape, dtype=bool)
    together = (number.T.astype(np.int64) @ number.astype(np.int64)) > 0
    counts = number.sum(axis=1)
    for c in range(values.shape[1]):
        if not number[:, c].any():
            continue
        foreign = number[:, ~together[c]].any(axis=1)
        out[:, c] = nan[:, c] & foreign
        # rows that log something besides C (a number in another column)
        elsewhere = (counts - number[:, c]) > 0
        own = np.flatnonzero(present[:, c] & ~out[:, c])
        is_nan = nan[own, c]
        if is_nan.sum() < (~is_nan).sum():
            continue
        last = int(np.flatnonzero(~is_nan)[-1])
        before = np.flatnonzero(np.diff(np.r_[0, is_nan[:last].astype(np.int8), 0]))
        longest = int(np.max(before[1::2] - before[::2], initial=0))
        rhythm = np.zeros(len(own), dtype=bool)
        rhythm[:last] = is_nan[:last]
        if len(own) - last - 1 <= longest:
            rhythm[last + 1:] = True
        out[own[rhythm & elsewhere[own]], c] = True
    return out


def _from_rows(path: Path, columns: list[str], rows: list[Row], fmt: str) -> Logs:
    """Rows -> series: text columns left out (noted), a text cell in a numeric column an
    error naming its line, a column that never holds a number (only empty cells or
    ``nan``: validation that never ran) left out (noted: no values, nothing to judge),
    ``nan`` placeholders dropped (:func:`placeholders`, noted), then for each step the
    last value logged."""
    notes: list[str] = []
    numeric: list[str] = []
    empty: list[str] = []
    for name in columns:
        entries = [(where, cells[name]) for where, _, cells in rows if name in cells]
        values = [_number(v) for _, v in entries]
        if entries and all(v is None for v in values):
            notes.append(f"{name}: not numeric, left out")
            continue
        for (where, text), value in zip(entries, values, strict=True):
            if value is None:
                raise InputError(f"{where}: {name} = {text!r} is not a number (a metric "
                                 "holds numbers, nan or inf only)")
        if all(math.isnan(v) for v in values):  # also: no cell at all
            how = ("every cell empty" if not values else "nan in its one row"
                   if len(values) == 1 else f"nan in all {len(values)} rows that hold it")
            notes.append(f"{name}: no values ({how}), left out")
            empty.append(name)
            continue
        numeric.append(name)
    values = np.full((len(rows), len(numeric)), np.nan)
    present = np.zeros(values.shape, dtype=bool)
    for r, (_, _, cells) in enumerate(rows):
        for c, name in enumerate(numeric):
            if name in cells:
                values[r, c] = _number(cells[name])
                present[r, c] = True
    skip = placeholders(values, present)
    dropped = [f"{name} {n}" for name, n in zip(numeric, skip.sum(axis=0).tolist(),
                                                strict=True) if n]
    if dropped:
        notes.append("nan placeholders (rows that do not log the series) not counted as "
                     f"values: {', '.join(dropped)}")
    points: dict[str, dict[float, float]] = {}
    keep = present & ~skip
    for c, name in enumerate(numeric):
        by_step = points.setdefault(name, {})
        for r in np.flatnonzero(keep[:, c]):
            by_step[rows[r][1]] = float(values[r, c])
    series = _finish(points)
    if not series and empty:
        raise InputError(f"{path}: no metric holds a number (only nan or empty cells in "
                         f"{', '.join(empty)})")
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
    columns: dict[str, None] = {}
    table: list[Row] = []
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
        cells = {name: value for name, value in flat.items()
                 if name.lower() not in NOT_METRICS and value is not None}
        columns.update(dict.fromkeys(cells))
        table.append((where, float(step), cells))
    if not columns:
        raise InputError(f"{path}: no metric values (every record holds only a step)")
    return _from_rows(path, list(columns), table, "jsonl")


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


def _split_run(rel: str) -> tuple[str, str]:
    """A folder (or table without its suffix) relative to the folder given -> (its run,
    the part inside the run): trailing split names (``train``, ``validation``...) are
    inside the run above them.

    >>> _split_run("exp1/train"), _split_run("exp2"), _split_run("validation")
    (('exp1', 'train'), ('exp2', ''), ('', 'validation'))
    """
    parts = [p for p in rel.split("/") if p and p != "."]
    cut = len(parts)
    while cut and parts[cut - 1].lower() in SPLITS:
        cut -= 1
    return "/".join(parts[:cut]), "/".join(parts[cut:])


def _event_runs(path: Path) -> tuple[dict[str, Logs], list[str]]:
    """TensorBoard runs under ``path``: ``{run: Logs}`` and notes on runs left out.

    Each folder holding event files belongs to a run: itself, or the run above it when its
    name is a split (``train/``, ``validation/``) or when it lies inside another run's
    folder (torch's ``add_hparams`` sub-folder). Inside a run, the tags are prefixed by
    the folder's path relative to the run (``train/epoch_loss``).
    """
    from tensorboard.backend.event_processing import event_accumulator as ea

    folders: dict[str, list[Path]] = {}
    if path.is_file():
        folders[""] = [path]
    elif path.is_dir():
        for file in sorted(path.rglob(f"*{EVENT_MARKER}*")):
            if file.is_file():
                rel = file.parent.relative_to(path).as_posix()
                folders.setdefault("" if rel == "." else rel, []).append(file)
    if not folders:
        raise InputError(f"{path}: no TensorBoard event files (events.out.tfevents.*)")
    heads = {rel: _split_run(rel)[0] for rel in folders}
    roots = sorted(set(heads.values()), key=lambda r: (r.count("/"), r))

    def run_of(rel: str) -> str:
        head = heads[rel]
        return next(r for r in roots if r == "" or head == r or head.startswith(r + "/"))

    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # purge notices of restarts
    runs: dict[str, Logs] = {}
    notes: list[str] = []
    failed: dict[str, InputError] = {}  # run -> why it is left out (several runs only)
    for rel, files in folders.items():
        run = run_of(rel)
        inner = rel[len(run):].lstrip("/")
        target = files[0] if path.is_file() else path / rel
        if run in failed:
            continue
        try:
            accumulator = ea.EventAccumulator(
                str(target), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0}).Reload()
            found = _scalar_points(accumulator)
        except Exception as exc:  # corrupt protobufs surface as many exception types
            error = InputError(f"{target}: unreadable TensorBoard event file ({exc})")
            if len(roots) == 1:
                raise error from None
            failed[run] = error
            runs.pop(run, None)
            notes.append(_left_out(error, target, path))
            continue
        logs = runs.setdefault(run, Logs({}, "tensorboard", [],
                                         source=str(path / run) if run else str(path)))
        logs.files.extend(str(f) for f in files)
        logs.series.update({f"{inner}/{tag}" if inner else tag: points
                            for tag, points in _finish(found).items()})
    for run, logs in list(runs.items()):
        if not logs.series and len(runs) > 1:
            notes.append(f"{run or '.'}: no scalar series in its event files, left out")
            del runs[run]
    if not any(logs.series for logs in runs.values()):
        if failed:
            raise _none_left(path, notes)
        raise InputError(f"{path}: no scalar series in the event files (empty or unreadable "
                         "files, or only images and histograms)")
    return runs, notes


def _left_out(error: InputError, file: Path, root: Path) -> str:
    """The note on a run left out of a folder of several runs: ``error`` with ``file``
    shown relative to ``root``, then ``, left out``.

    >>> _left_out(InputError("/x/v1/metrics.csv: the file is empty"),
    ...           Path("/x/v1/metrics.csv"), Path("/x"))
    'v1/metrics.csv: the file is empty, left out'
    """
    text = str(error)
    try:
        shown = file.relative_to(root).as_posix()
    except ValueError:
        shown = str(file)
    if text.startswith(str(file)):
        text = shown + text[len(str(file)):]
    return f"{text}, left out"


def _none_left(path: Path, notes: list[str]) -> InputError:
    """The error when every run of a folder of several runs was left out."""
    reasons = "; ".join(n.removesuffix(", left out") for n in notes)
    return InputError(f"{path}: no run could be read ({reasons})")


def read_event_files(path: Path) -> Logs:
    """TensorBoard event files: one file, or every run folder under ``path`` (each run's
    folder, relative to ``path``, prefixes its tags).

    >>> read_event_files(Path("/nonexistent"))
    Traceback (most recent call last):
    ...
    genmetrics.errors.InputError: /nonexistent: no TensorBoard event files (events.out.tfevents.*)
    """
    runs, notes = _event_runs(path)
    return merge_runs(runs, notes, path)


def _kind(file: Path) -> str | None:
    if EVENT_MARKER in file.name:
        return "tensorboard"
    if file.suffix.lower() in CSV_SUFFIXES:
        return "csv"
    if file.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    return None


def read_runs(path: Path) -> tuple[dict[str, Logs], list[str]]:
    """The runs at ``path``, each read on its own: ``{run: Logs}`` (the run's path
    relative to ``path``; ``""`` for ``path`` itself) and notes on what was left out.

    A file is one run. In a folder with TensorBoard event files, each folder holding
    event files is a run (``tb/exp1``, ``tb/exp2``, ``lightning_logs/version_0``), except
    split folders (``train/``, ``validation/``) and folders inside a run, which belong to
    the run above them. In a folder without event files, each ``.csv``/``.jsonl`` file is a
    run (a file named after a split, ``val.csv``, joins its folder's run, prefixing its
    series with its name); one such file alone is read as if given.

    >>> read_runs(Path("/nonexistent/run"))
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
        if kind == "tensorboard":
            return _event_runs(path)
        logs = {"csv": read_csv, "jsonl": read_jsonl}[kind](path)
        logs.source = str(path)
        return {"": logs}, []
    tables = sorted(f for f in path.rglob("*") if f.is_file() and _kind(f) in ("csv", "jsonl"))
    if any(f.is_file() for f in path.rglob(f"*{EVENT_MARKER}*")):
        runs, notes = _event_runs(path)
        if tables:
            shown = ", ".join(f.relative_to(path).as_posix() for f in tables[:5])
            more = f" (+{len(tables) - 5} more)" if len(tables) > 5 else ""
            notes.append(f"{len(tables)} .csv/.jsonl file(s) beside the event files not "
                         f"read: {shown}{more}")
        return runs, notes
    if not tables:
        raise InputError(f"{path}: no logs inside (TensorBoard event files, .csv or .jsonl)")
    if len(tables) == 1:
        return read_runs(tables[0])
    members: dict[str, list[tuple[str, Path]]] = {}
    for table in tables:
        run, inner = _split_run(re.sub(r"\.[^.]+$", "", table.relative_to(path).as_posix()))
        members.setdefault(run, []).append((inner, table))
    runs: dict[str, Logs] = {}
    notes: list[str] = []
    for run, files in members.items():
        folder = str(path / run) if run else str(path)
        single = len(files) == 1 and not files[0][0]
        logs = Logs({}, "", [], source=str(files[0][1]) if single else folder)
        formats = set()
        try:
            for inner, table in files:
                part = read_runs(table)[0][""]
                prefix = f"{inner}/" if inner else ""
                logs.series.update({prefix + k: v for k, v in part.series.items()})
                logs.files.extend(part.files)
                logs.notes.extend(prefix + n for n in part.notes)
                formats.add(part.format)
        except InputError as exc:  # one run that cannot be read: the others still are
            if len(members) == 1:
                raise
            notes.append(_left_out(exc, table, path))
            continue
        logs.format = formats.pop() if len(formats) == 1 else "mixed"
        runs[run] = logs
    if not runs:
        raise _none_left(path, notes)
    return runs, notes


def merge_runs(runs: dict[str, Logs], notes: Iterable[str] = (), source: Path | str = ""
               ) -> Logs:
    """All runs as one :class:`Logs`, each run's path prefixing its series and notes.

    >>> a = Logs({"loss": (np.zeros(1), np.ones(1))}, "csv", ["a.csv"])
    >>> b = Logs({"loss": (np.zeros(1), np.ones(1))}, "jsonl", ["b.jsonl"])
    >>> logs = merge_runs({"a": a, "b": b})
    >>> sorted(logs.series), logs.format
    (['a/loss', 'b/loss'], 'mixed')
    """
    merged = Logs({}, "", [], source=str(source))
    formats = set()
    for run, logs in runs.items():
        prefix = f"{run}/" if run else ""
        merged.series.update({prefix + k: v for k, v in logs.series.items()})
        merged.files.extend(logs.files)
        merged.notes.extend(prefix + n for n in logs.notes)
        formats.add(logs.format)
    merged.notes.extend(notes)
    merged.format = formats.pop() if len(formats) == 1 else "mixed"
    return merged


def read_logs(path: Path) -> Logs:
    """Read a log file or a folder of logs as one :class:`Logs`: every run of
    :func:`read_runs`, its path relative to ``path`` prefixing its series (event files
    first; else every CSV/JSONL in it, each file's path prefixing its series when there
    are several).

    >>> read_logs(Path("/nonexistent/run"))
    Traceback (most recent call last):
    ...
    genmetrics.errors.InputError: /nonexistent/run: no such file or folder
    """
    runs, notes = read_runs(Path(path))
    return merge_runs(runs, notes, path)
