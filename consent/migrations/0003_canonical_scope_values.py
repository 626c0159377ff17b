
"""Scope values must be canonical vocabulary codes (registry/vocabulary.py).

SQLite changes a constraint by rebuilding the table, which drops the append-only guards
with it, so the guards are lifted around the change and put back after it."""

from django.db import migrations, models

APPEND_ONLY = ("consent_consentrecord",)


def guard_records(apps, schema_editor):
    from audit import guards

    guards.install(schema_editor.connection, APPEND_ONLY)


def unguard_records(apps, schema_editor):
    from audit import guards

    guards.uninstall(schema_editor.connection, APPEND_ONLY)



class Migration(migrations.Migration):

    dependencies = [
        ('consent', '0002_seed_purposes_and_guard_records'),
        ('registry', '0002_series_anatomy'),
    ]

    operations = [
        migrations.RunPython(unguard_records, guard_records),
        migrations.RemoveConstraint(
            model_name='consentrecord',
            name='consent_scope_value_matches_kind',
        ),
        migrations.AddConstraint(
            model_name='consentrecord',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('scope_kind', 'all'), ('scope_value', '')), models.Q(('scope_kind', 'study'), models.Q(('scope_value', ''), _negated=True)), models.Q(('scope_kind', 'modality'), ('scope_value__in', ['AR', 'BDUS', 'BI', 'BMD', 'CFM', 'CR', 'CT', 'DG', 'DMS', 'DX', 'ECG', 'EEG', 'EMG', 'EOG', 'EPS', 'ES', 'GM', 'HD', 'IO', 'IVOCT', 'IVUS', 'KER', 'LEN', 'LS', 'MG', 'MR', 'NM', 'OAM', 'OCT', 'OP', 'OPM', 'OPT', 'OPTBSV', 'OPTENF', 'OPV', 'OSS', 'PA', 'POS', 'PT', 'PX', 'RESP', 'RF', 'RG', 'RTIMAGE', 'SM', 'SRF', 'TG', 'US', 'VA', 'XA', 'XC', 'XRAY'])), models.Q(('scope_kind', 'body_part'), ('scope_value__in', ['HEAD', 'NECK', 'CHEST', 'BREAST', 'ABDOMEN', 'PELVIS', 'SPINE', 'UPPERLIMB', 'LOWERLIMB'])), _connector='OR'), name='consent_scope_value_canonical'),
        ),
        migrations.RunPython(guard_records, unguard_records),
    ]
