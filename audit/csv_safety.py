"""CSV that a spreadsheet will not execute (OWASP, "CSV Injection").

Every CSV Consentry writes (the auditor's event and disclosure exports, export manifests)
goes through here. A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return would be read as a formula by Excel, LibreOffice or Google Sheets, and a value we
did not choose (a username typed at a failed sign-in, a dataset's recipient) could then
open links or leak other cells. Such a cell is prefixed with a single quote, as OWASP
advises; the csv module quotes the rest. Numbers are left alone: they are written as
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

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell(value) for value in row])
