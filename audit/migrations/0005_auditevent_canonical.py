from django.db import migrations, models


class Migration(migrations.Migration):
    """A nullable column without a default: on PostgreSQL and on SQLite an ``ALTER TABLE ADD
    COLUMN`` that writes no row, so the append-only triggers neither fire nor need lifting
    (SQLite keeps them: the table is not re-created). Existing events keep NULL and are
    verified from their columns, as before."""

    dependencies = [
        ("audit", "0004_pendingseal_digest"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="canonical",
            field=models.TextField(blank=True, editable=False, null=True),
        ),
    ]
