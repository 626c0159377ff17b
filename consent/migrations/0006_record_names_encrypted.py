"""The proxy's and the witness's names on consent records encrypted at rest (issue 12).

Consent records are append-only in the database itself (0002, audit/guards.py), so the
existing rows can be written back encrypted only with that guard lifted: it is lifted for
this one step and restored before the step ends, in the migration's transaction
(``guards.updates_lifted``). On SQLite, changing a column's type re-creates the table, which
drops its triggers: both are installed again first, exactly as 0002 made them.

Only the storage changes: the ledger's digests of these rows are over the decrypted values
(consent/vouched.py), so ``verify_ledger`` stays intact. Not reversible: going back would
write the names in clear."""

import registry.identifiers
from django.db import migrations

TABLE = "consent_consentrecord"
BATCH = 2000


def encrypt_names(apps, schema_editor):
    from audit import guards

    connection = schema_editor.connection
    guards.install(connection, (TABLE,))
    ConsentRecord = apps.get_model("consent", "ConsentRecord")
    last = 0
    with guards.updates_lifted(connection, TABLE):
        while True:  # a batch at a time, not every record in memory at once
            records = list(ConsentRecord.objects.filter(pk__gt=last).order_by("pk")
                           .only("pk", "proxy_name", "witness")[:BATCH])
            if not records:
                return
            # bulk_update writes each value through the field, which encrypts it.
            ConsentRecord.objects.bulk_update(records, ["proxy_name", "witness"])
            last = records[-1].pk


class Migration(migrations.Migration):

    dependencies = [
        ('consent', '0005_invite_email_encrypted'),
    ]

    operations = [
        migrations.AlterField(
            model_name='consentrecord',
            name='proxy_name',
            field=registry.identifiers.IdentifierCharField(blank=True, max_length=200),
        ),
        migrations.AlterField(
            model_name='consentrecord',
            name='witness',
            field=registry.identifiers.IdentifierCharField(blank=True, max_length=200),
        ),
        migrations.RunPython(encrypt_names, elidable=False),
    ]
