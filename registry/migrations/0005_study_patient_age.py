from django.db import migrations, models


def fill_ages(apps, schema_editor):
    # The historical model's birth_date field decrypts as the live one does (0004 keyed it).
    from registry.models import age_on

    Patient = apps.get_model("registry", "Patient")
    ImagingStudy = apps.get_model("registry", "ImagingStudy")
    births = dict(Patient.objects.values_list("pk", "birth_date").iterator(chunk_size=2000))
    batch = []
    for study in ImagingStudy.objects.only("pk", "patient_id", "study_date").iterator(
            chunk_size=2000):
        study.patient_age = age_on(births.get(study.patient_id), study.study_date)
        batch.append(study)
        if len(batch) >= 2000:
            ImagingStudy.objects.bulk_update(batch, ["patient_age"])
            batch = []
    ImagingStudy.objects.bulk_update(batch, ["patient_age"])


class Migration(migrations.Migration):

    dependencies = [
        ("registry", "0004_identifiers_encrypted"),
    ]

    operations = [
        migrations.AddField(
            model_name="imagingstudy",
            name="patient_age",
            field=models.SmallIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(fill_ages, migrations.RunPython.noop, elidable=False),
    ]
