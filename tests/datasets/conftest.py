"""A small hospital for export tests: two synthetic patients, real DICOM files, one consent."""

from datetime import date

import pytest

from consent.models import Purpose
from consent.selectors import current_form
from consent.services import consent_record
from registry.demo import RECIPES, SyntheticPatient, write_study
from registry.identifiers import mrn_digest
from registry.models import Patient
from registry.registration import dicom_ingest_paths
from tests.datasets.helpers import STEWARD

BY_NAME = {r.description: r for r in RECIPES}


@pytest.fixture(autouse=True)
def _jobs_inline(inline_celery):
    """Export jobs and notices run in the test's own process."""


@pytest.fixture
def hospital(db, tmp_path):
    """Ann said yes to AI training; Ben said nothing (opt-in: no)."""
    people = {"ann": SyntheticPatient("MRN-ANN", "Anvers^Ann", date(1970, 1, 2), "F"),
              "ben": SyntheticPatient("MRN-BEN", "Bexley^Ben", date(1980, 3, 4), "M")}
    files = []
    for key, recipes in {"ann": ["CR CHEST PA", "MR KNEE LEFT", "CT HEAD WITHOUT CONTRAST",
                                 "US ABDOMEN"],
                         "ben": ["CR CHEST PA"]}.items():
        for n, name in enumerate(recipes):
            files += write_study(out_dir=tmp_path / "in", patient=people[key],
                                 recipe=BY_NAME[name], study_date=date(2025, 5, 1 + n),
                                 accession=f"{key}-{n}")
    dicom_ingest_paths(paths=files, actor=STEWARD, source="test")
    ann = Patient.objects.get(mrn_index=mrn_digest("MRN-ANN"))
    consent_record(patient=ann, purpose=Purpose.objects.get(code="ai-training"),
                   decision="permit", actor=STEWARD, source="paper", form=current_form())
    return {"ann": ann, "ben": Patient.objects.get(mrn_index=mrn_digest("MRN-BEN"))}
