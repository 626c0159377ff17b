"""CSV that a spreadsheet will not execute (OWASP, "CSV Injection").

Every CSV Consentry writes (the auditor's event and disclosure exports, export manifests)
goes through here. A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return would be read as a formula by Excel, LibreOffice or Google Sheets, and a value we
did not choose (a username typed at a failed sign-in, a dataset's recipient) could then
open links or leak other cells. Such a cell is prefixed with a single quote, as OWASP
advises; the csv module quotes the rest. A row with a ';' in a cell has its text cells
quoted: a spreadsheet set to split on semicolons (Excel in much of Europe) would otherwise
start a new cell at the ';' of ``x;=1+2``, and that cell would run. Other rows are written
as before, so a plain export reads the same as ever. Numbers are left alone: they are written as
numbers, never formulas. It lives in the ledger's app only because that is the lowest
layer every writer may import."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Writable(Protocol):
    def write(self, value: str, /) -> Any: ...


def csv_cell(value: Any) -> Any:
    """The value as it may safely be written to a CSV cell."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeCsvWriter:
    """``csv.writer`` whose every cell goes through ``csv_cell``."""

    def __init__(self, handle: _Writable) -> None:
        self._writer = csv.writer(handle)
        self._quoting_writer = csv.writer(handle, quoting=csv.QUOTE_STRINGS)

    def writerow(self, row: Iterable[Any]) -> Any:
        cells = [csv_cell(value) for value in row]
        split = any(isinstance(cell, str) and ";" in cell for cell in cells)
        return (self._quoting_writer if split else self._writer).writerow(cells)
