"""A dataset whose selection finds no study cannot be run: the preview says why and offers
no button, and a POST to run it records nothing."""

from django.urls import reverse

from audit.models import AuditEvent
from datasets.models import DatasetVersion
from tests.clients import signed_in as client_for
from tests.consent.factories import make_study
from tests.datasets.helpers import make_dataset


def test_a_dataset_with_no_studies_cannot_be_run(steward, patient):
    """Reproduction: a dataset with 0 studies selected could still be run."""
    make_study(patient, ("CT", "CHEST"))  # outside the selection below (no study date)
    dataset = make_dataset(steward, selection={"date_from": "2030-01-01"})
    client = client_for(steward)
    preview = client.get(reverse("dataset-preview", args=[dataset.pk])).content.decode()
    assert "0 studies are selected" in preview and 'id="nothing-selected"' in preview
    assert "Run the export" not in preview
    events = AuditEvent.objects.count()
    page = client.post(reverse("dataset-run", args=[dataset.pk]), follow=True).content.decode()
    assert "Not run: this dataset selects no studies" in page
    assert DatasetVersion.objects.count() == 0
    assert AuditEvent.objects.count() == events


def test_a_dataset_with_studies_still_offers_the_run(steward, patient):
    from registry.models import ImagingStudy

    study = make_study(patient, ("CT", "CHEST"))
    ImagingStudy.objects.filter(pk=study.pk).update(study_date="2026-01-02")
    dataset = make_dataset(steward)
    preview = client_for(steward).get(reverse("dataset-preview", args=[dataset.pk])
                                      ).content.decode()
    assert "1 study is selected" in preview and "Run the export" in preview
