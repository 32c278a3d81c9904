"""Render a header and rows of strings as a markdown table, CSV, or a rich table.

Shared by the commands that print tables (``compare``, ``gate``). Cells are plain
strings: no rich markup is interpreted, and markdown gets ``|`` escaped.
``align`` is one letter per column, ``l`` (left), ``r`` (right) or ``c`` (center).

    >>> header, rows = ["metric", "value"], [["bleu", "34.95"], ["a|b", "1"]]
    >>> print(markdown(header, rows, align="lr"))
    | metric | value |
    |---|---:|
    | bleu | 34.95 |
    | a\\|b | 1 |
    >>> print(to_csv(header, rows), end="")
    metric,value
    bleu,34.95
    a|b,1
    >>> table = rich_table(header, rows, align="lr")
    >>> table.row_count, [c.justify for c in table.columns]
    (2, ['left', 'right'])
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

_MD_ALIGN = {"l": "---", "r": "---:", "c": ":---:"}
_RICH_ALIGN = {"l": "left", "r": "right", "c": "center"}


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None
             ) -> str:
    """A GitHub markdown table (no trailing newline); ``|`` and ``\\`` in cells are escaped."""
    align = align or "l" * len(header)
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join(_MD_ALIGN[a] for a in align) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """CSV text (``\\n`` line ends, minimal quoting), header first."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def rich_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None,
               **table_options: Any):
    """A :class:`rich.table.Table`; cells are literal text (``[x]`` is not markup)."""
    from rich.table import Table
    from rich.text import Text

    align = align or "l" * len(header)
    table = Table(**table_options)
    for name, a in zip(header, align, strict=True):
        table.add_column(Text(name), justify=_RICH_ALIGN[a])  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(Text(c) for c in row))
    return table


def render_rich(table: Any, width: int | None = None) -> str:
    """Plain text of a rich renderable; ``width=None`` keeps the table's natural width."""
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width or 10_000, color_system=None, highlight=False,
            soft_wrap=False).print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
