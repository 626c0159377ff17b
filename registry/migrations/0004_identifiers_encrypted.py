"""Direct identifiers encrypted at rest, with blind indexes to find them (issue 12).

The columns become text holding Fernet tokens; existing plaintext rows are read as they are
(the field passes a value that is not a token through) and written back encrypted, with
their blind indexes and search keys filled, before the unique constraint and the indexes
on the digests are made. Not reversible: going back would write identifiers in clear."""

import django.db.models.deletion
import registry.identifiers
from django.conf import settings
from django.db import migrations, models

BATCH = 2000


def encrypt_and_index(apps, schema_editor):
    from registry.identifiers import accession_digest, mrn_digest, patient_search_digests

    Patient = apps.get_model("registry", "Patient")
    PatientSearchKey = apps.get_model("registry", "PatientSearchKey")
    ImagingStudy = apps.get_model("registry", "ImagingStudy")
    patients = list(Patient.objects.order_by("pk"))
    for patient in patients:
        patient.mrn_index = mrn_digest(patient.mrn)
    # bulk_update writes each value through the field, which encrypts it.
    Patient.objects.bulk_update(patients, ["mrn", "name", "birth_date", "mrn_index"],
                                batch_size=BATCH)
    PatientSearchKey.objects.bulk_create([
        PatientSearchKey(patient_id=p.pk, digest=digest) for p in patients
        for digest in sorted(patient_search_digests(mrn=p.mrn, name=p.name or ""))],
        batch_size=BATCH)
    studies = list(ImagingStudy.objects.order_by("pk").only("pk", "accession_number"))
    for study in studies:
        study.accession_index = accession_digest(study.accession_number or "")
    ImagingStudy.objects.bulk_update(studies, ["accession_number", "accession_index"],
                                     batch_size=BATCH)



class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0003_instance_burned_in_annotation'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='PatientSearchKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('digest', models.CharField(max_length=64)),
            ],
        ),
        migrations.AlterModelOptions(
            name='patient',
            options={'ordering': ['-created_at', '-id']},
        ),
        migrations.RemoveConstraint(
            model_name='patient',
            name='patient_mrn_per_issuer',
        ),
        migrations.RemoveIndex(
            model_name='imagingstudy',
            name='study_accession',
        ),
        migrations.AddField(
            model_name='imagingstudy',
            name='accession_index',
            field=registry.identifiers.BlindIndexField(kind='accession', source='accession_number'),
        ),
        migrations.AddField(
            model_name='patient',
            name='mrn_index',
            field=registry.identifiers.BlindIndexField(kind='mrn', source='mrn'),
        ),
        migrations.AlterField(
            model_name='imagingstudy',
            name='accession_number',
            field=registry.identifiers.IdentifierCharField(blank=True, max_length=64),
        ),
        migrations.AlterField(
            model_name='patient',
            name='birth_date',
            field=registry.identifiers.IdentifierDateField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='patient',
            name='mrn',
            field=registry.identifiers.IdentifierCharField(max_length=64, verbose_name='MRN'),
        ),
        migrations.AlterField(
            model_name='patient',
            name='name',
            field=registry.identifiers.IdentifierCharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name='patientsearchkey',
            name='patient',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='registry.patient'),
        ),
        migrations.RunPython(encrypt_and_index, elidable=False),
        migrations.AddIndex(
            model_name='imagingstudy',
            index=models.Index(fields=['accession_index'], name='study_accession'),
        ),
        migrations.AddIndex(
            model_name='patient',
            index=models.Index(fields=['mrn_index'], name='patient_mrn_index'),
        ),
        migrations.AddConstraint(
            model_name='patient',
            constraint=models.UniqueConstraint(fields=('issuer', 'mrn_index'), name='patient_mrn_per_issuer'),
        ),
        migrations.AddConstraint(
            model_name='patientsearchkey',
            constraint=models.UniqueConstraint(fields=('digest', 'patient'), name='search_key_unique'),
        ),
    ]
