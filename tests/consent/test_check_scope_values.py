"""manage.py check_scope_values lists records whose scope value the vocabulary does not
explain. The database's constraint keeps new records canonical, so the records here are
those it cannot check: a study that is not the patient's, and, on PostgreSQL, a record
written before the constraint (dropped inside the test's transaction, which rolls back)."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tests.consent.factories import make_patient, make_record, make_study

pytestmark = pytest.mark.django_db


def test_a_clean_registry_passes(capsys):
    patient = make_patient()
    make_study(patient, ("MR", "BRAIN"))
    make_record(patient, "research", "deny", scope_kind="body_part", scope_value="HEAD")
    make_record(patient, "research", "deny", scope_kind="modality", scope_value="XRAY")
    call_command("check_scope_values")
    assert "Every consent record's scope value is in the vocabulary" in capsys.readouterr().out


def test_a_study_scope_for_someone_elses_study_is_listed(capsys):
    mine, theirs = make_patient("MINE"), make_patient("THEIRS")
    study = make_study(theirs)
    record = make_record(mine, "research", "deny", scope_kind="study",
                         scope_value=study.study_uid)
    with pytest.raises(CommandError, match="1 consent record"):
        call_command("check_scope_values")
    out = capsys.readouterr().out
    assert f"record {record.pk}: patient MINE" in out and "no such study" in out


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="SQLite cannot suspend a CHECK constraint")
def test_records_written_before_the_constraint_are_listed(capsys):
    patient = make_patient("OLD")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE consent_consentrecord "
                       "DROP CONSTRAINT consent_scope_value_canonical")
    legacy = make_record(patient, "ai-training", "deny", scope_kind="body_part",
                         scope_value="BRAINZ")
    mri = make_record(patient, "ai-training", "deny", scope_kind="modality",
                      scope_value="MRI")
    with pytest.raises(CommandError, match="2 consent record"):
        call_command("check_scope_values")
    out = capsys.readouterr().out
    assert f"record {legacy.pk}" in out and "'BRAINZ': not a known body part code" in out
    assert f"record {mri.pk}" in out and "'MRI': not a known modality code" in out
