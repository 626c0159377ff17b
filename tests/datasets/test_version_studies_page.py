"""The version's study list: filter by fate and reason, sort, and page through, with only
choices (never PHI) in the URL; unknown values fall back to the defaults."""

import re
from datetime import date, timedelta

import pytest
from django.urls import reverse

from datasets.models import DatasetVersion, VersionStudy
from registry.models import ImagingStudy
from tests.clients import signed_in as client_for
from tests.consent.factories import make_study
from tests.datasets.helpers import make_dataset


@pytest.fixture
def version(steward, patient):
    dataset = make_dataset(steward)
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="stella",
                                            status="complete", studies_total=150,
                                            studies_done=150)
    for n in range(150):
        study = make_study(patient, ("CT", "CHEST"))
        # Dated in the opposite order to their numbers, so a sort by date is seen to work.
        ImagingStudy.objects.filter(pk=study.pk).update(
            accession_number=f"ACC{n:03d}", study_date=date(2025, 1, 1) + timedelta(days=149 - n))
        included = n % 3 != 0
        VersionStudy.objects.create(
            version=version, study=study, included=included, files=n % 7,
            reason="" if included else ("no consent" if n % 2 else "unsafe pixels"))
    return version


def listed(page: str) -> list[str]:
    return re.findall(r'data-label="Accession">(ACC\d+)<', page)


def test_the_list_is_paged(steward, version):
    client = client_for(steward)
    url = reverse("dataset-version", args=[version.pk])
    first = client.get(url).content.decode()
    assert len(listed(first)) == 100 and "page 1 of 2" in first
    second = client.get(url + "?fate=all&sort=fate&page=2").content.decode()
    assert len(listed(second)) == 50
    assert not set(listed(first)) & set(listed(second))


def test_filter_by_fate_and_reason(steward, version):
    client = client_for(steward)
    url = reverse("dataset-version", args=[version.pk])
    left_out = client.get(url + "?fate=left-out").content.decode()
    assert re.search(r'id="fates-count">50 studies', left_out)
    no_consent = client.get(url + "?fate=left-out&reason=no+consent").content.decode()
    assert re.search(r'id="fates-count">25 studies', no_consent)
    assert "unsafe pixels</td>" not in no_consent


def test_sort_by_study_date(steward, version):
    page = client_for(steward).get(reverse("dataset-version", args=[version.pk])
                                   + "?sort=date").content.decode()
    assert listed(page)[:3] == ["ACC149", "ACC148", "ACC147"]


@pytest.mark.parametrize("query", ["?fate=nonsense", "?sort=drop+table", "?reason=x",
                                   "?page=999", "?page=abc"])
def test_unknown_choices_fall_back_to_defaults(steward, version, query):
    response = client_for(steward).get(reverse("dataset-version", args=[version.pk]) + query)
    assert response.status_code == 200
    assert len(listed(response.content.decode())) in (100, 50)
