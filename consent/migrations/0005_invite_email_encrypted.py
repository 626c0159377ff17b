"""Invitation emails encrypted at rest (issue 12): existing rows are written back encrypted."""

import registry.identifiers
from django.db import migrations


def encrypt_emails(apps, schema_editor):
    PatientInvite = apps.get_model("consent", "PatientInvite")
    invites = list(PatientInvite.objects.only("pk", "email"))
    PatientInvite.objects.bulk_update(invites, ["email"], batch_size=2000)


class Migration(migrations.Migration):

    dependencies = [
        ('consent', '0004_invite_mailed'),
    ]

    operations = [
        migrations.AlterField(
            model_name='patientinvite',
            name='email',
            field=registry.identifiers.IdentifierEmailField(max_length=254),
        ),
        migrations.RunPython(encrypt_emails, elidable=False),
    ]
