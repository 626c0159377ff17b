"""A spreadsheet set to split on semicolons (Excel in most of Europe) starts a new cell at
each ';' outside quotes: 'x;=1+2' would put a live formula in the second cell. The text cells
of a row holding a ';' are therefore quoted, which every spreadsheet honours when it splits."""

import csv
import io

from django.test import Client
from django.urls import reverse

from audit.csv_safety import SafeCsvWriter
from tests.clients import signed_in

SPLIT_FORMULA = "x;=2+5;@SUM(A1)"


def test_text_cells_are_quoted_so_no_separator_starts_a_cell():
    out = io.StringIO()
    SafeCsvWriter(out).writerow(["a;=1+2", "b;@SUM(A1)", "plain", 7, None])
    assert out.getvalue() == '"a;=1+2","b;@SUM(A1)","plain",7,\r\n'
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["a;=1+2", "b;@SUM(A1)",
                                                             "plain", "7", ""]


def test_a_sign_in_name_with_a_semicolon_formula_stays_in_one_quoted_cell(auditor, db):
    Client().post(reverse("login"), {"username": SPLIT_FORMULA, "password": "wrong"})
    response = signed_in(auditor).get(reverse("audit-export"), {
        "since": "2000-01-01 00:00", "until": "2100-01-01 00:00", "format": "csv"})
    body = b"".join(response.streaming_content).decode()
    assert '"x;=2+5;@SUM(A1)"' in body
    for line in body.splitlines():
        # Outside quotes no ';' is followed by a formula character.
        outside = line.split('"')[::2]
        assert not any(";" + c in part for part in outside for c in "=+-@")
