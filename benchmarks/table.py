"""Markdown tables and report output shared by the benchmark scripts.

>>> print(markdown_table(["cluster", "seconds"], [["local", "0.61"], ["mpi", "0.85"]]))
| cluster | seconds |
| ------- | ------- |
| local   | 0.61    |
| mpi     | 0.85    |
>>> ratio(1.5, 0.5), yes_no(True)
('3.00x', 'yes')
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table, columns padded so it also reads as plain text."""
    cells = [[str(h) for h in headers], *([str(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def ratio(ours: float, base: float) -> str:
    """``ours / base`` as ``"1.23x"`` (``"n/a"`` when the base is zero)."""
    return f"{ours / base:.2f}x" if base else "n/a"


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark script takes: ``--quick`` and ``--out``."""
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a smoke test of a few seconds"
    )
    parser.add_argument(
        "--out", type=Path, help="also write the Markdown report to this file (run_all.py)"
    )


def emit(report: str, out: Path | None) -> None:
    """Print the Markdown ``report`` and, with ``out``, write it there too."""
    print(report, flush=True)
    if out is not None:
        out.write_text(report + "\n", encoding="utf-8")
