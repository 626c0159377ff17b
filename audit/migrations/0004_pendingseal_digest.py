from django.db import migrations, models


def copy_digests(apps, schema_editor):
    PendingSeal = apps.get_model("audit", "PendingSeal")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    for pending in PendingSeal.objects.all().iterator():
        pending.digest = AuditEvent.objects.values_list("digest", flat=True).get(
            pk=pending.event_id)
        pending.save(update_fields=["digest"])


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0003_verification_runs"),
    ]

    operations = [
        migrations.AddField(
            model_name="pendingseal",
            name="digest",
            field=models.CharField(default="", max_length=64),
        ),
        # Events queued before this migration keep their place in the queue, with their digest.
        migrations.RunPython(copy_digests, migrations.RunPython.noop),
    ]
