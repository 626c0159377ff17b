"""Events keep the exact text their digest is of, and on PostgreSQL the database keeps, for
every event, whether its columns say exactly what that text says (audit/ledger.py, "verify").

``canonical`` is a nullable column without a default: an ``ALTER TABLE ADD COLUMN`` that
writes no row, on PostgreSQL and on SQLite (which therefore does not re-create the table and
keeps its append-only triggers). ``canonical_holds`` is a stored generated column: PostgreSQL
computes it whenever a row is written or changed, whoever changes it, and nobody can set it.
Adding it rewrites the table once under an exclusive lock (no row trigger fires: nothing is
UPDATEd); existing events get false (they have no text) and are verified from their columns,
as before.
"""

from django.db import migrations, models

# (position in the canonical JSON array, column, how to compare). The text is frozen here:
# audit/ledger.py checks that the database still has exactly this expression.
_FIELDS = (
    (1, "action", "text"), (2, "event_code", "text"), (3, "outcome", "text"),
    (4, "actor_user_id", "integer"), (5, "actor_label", "text"), (6, "actor_role", "text"),
    (7, "actor_ip", "inet"), (8, "api_token", "text"), (9, "patient_ref", "text"),
    (10, "study_uid", "text"), (11, "dataset_ref", "text"), (12, "purpose_code", "text"),
    (13, "legal_basis", "text"), (14, "consent_record_ids", "json"), (15, "reason", "text"),
    (16, "details", "json"), (17, "correlation_id", "text"),
)


def _compare(index: int, column: str, kind: str) -> str:
    element = f"((canonical)::jsonb ->> {index})"
    if kind == "integer":
        return f"({column} IS NOT DISTINCT FROM ({element})::integer)"
    if kind == "inet":
        return f"({column} IS NOT DISTINCT FROM ({element})::inet)"
    # Printed back by jsonb: key order and spacing do not count, a number's form does.
    return f"(({column})::text = (((canonical)::jsonb -> {index}))::text)"


# PostgreSQL evaluates every mention of the text as JSON anew (a generated column has no
# shared sub-expressions), so the thirteen text fields are compared in one JSON path match
# against the columns passed as its variables: one reading instead of thirteen.
_TEXTS = [(index, column) for index, column, kind in _FIELDS if kind == "text"]
_PATH = " && ".join(["$.size() == 18"] + [f"$[{index}] == $f{index}" for index, _ in _TEXTS])
_VARIABLES = ", ".join(f"'f{index}', ({column})::text" for index, column in _TEXTS)

# Only immutable built-in functions and operators (PostgreSQL requires it, and no function
# of ours could be swapped to change what the column says). occurred_at is compared when the
# chain is read (formatting a time is not immutable), the rest here.
HOLDS = ("COALESCE(jsonb_path_match((canonical)::jsonb, "
         f"'{_PATH}', jsonb_object(ARRAY[{_VARIABLES}])) AND "
         + " AND ".join(_compare(*field) for field in _FIELDS if field[2] != "text")
         + ", false)")


def add_holds(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE audit_auditevent ADD COLUMN canonical_holds boolean "
                          f"GENERATED ALWAYS AS ({HOLDS}) STORED")


def drop_holds(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE audit_auditevent DROP COLUMN IF EXISTS canonical_holds")


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0004_pendingseal_digest"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="canonical",
            field=models.TextField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(add_holds, drop_holds),
    ]
