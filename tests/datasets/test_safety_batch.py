"""The export reads the safety check's series facts for a batch of studies in one query
(``volume_regions``); the verdict must be the per-study ``unsafe_reason``'s for every study,
over the demo recipes and every file of pydicom's test data that registers."""

from datetime import date
from pathlib import Path

from pydicom.data import get_testdata_files
from pydicom.errors import InvalidDicomError

from audit.ledger import Actor
from datasets.deid import DeidContext
from datasets.deid_write import read_source
from datasets.selection import unsafe_reason, volume_regions
from registry.demo import RECIPES, SyntheticPatient, write_study
from registry.models import ImagingStudy, Instance
from registry.registration import dicom_ingest_paths


def test_the_batch_facts_give_every_study_the_per_study_verdict(
        db, tmp_path, django_assert_num_queries):
    files = [p for p in get_testdata_files() if Path(p).is_file()]
    for n, recipe in enumerate(RECIPES):
        person = SyntheticPatient(f"MRN-{n:03}", f"Person^{n}", date(1970 + n, 1, 1), "F")
        files += write_study(out_dir=tmp_path / "in", patient=person, recipe=recipe,
                             study_date=date(2025, 1, 1), accession=f"ACC-{n}")
    dicom_ingest_paths(paths=files, actor=Actor(label="test", role="steward"), source="test")
    studies = list(ImagingStudy.objects.order_by("pk"))
    assert len(studies) > len(RECIPES)  # pydicom's files registered too, not only the demo
    context = DeidContext(secret=b"test")
    with django_assert_num_queries(1):
        batch = volume_regions(s.pk for s in studies)

    verdicts = set()
    for study in studies:
        try:  # Burned In Annotation as the export reads it: from each file's header
            burned_in = [read_source(i.path, context).burned_in
                         for i in Instance.objects.filter(series__study=study)]
        except (OSError, InvalidDicomError):
            continue  # the export leaves such a study out before its safety check
        for defaced in (False, True):
            for redact in (False, True):
                one = unsafe_reason(study, burned_in, defaced_upstream=defaced,
                                    redact_text=redact)
                batched = unsafe_reason(study, burned_in, defaced_upstream=defaced,
                                        redact_text=redact, volumes=batch.get(study.pk, []))
                assert batched == one, (study.description, study.modalities, defaced, redact)
                verdicts.add(one)
    # Not vacuous: safe studies, 3D head studies and volumes of unknown anatomy among them.
    assert "" in verdicts
    assert any(v.startswith("3D head study") for v in verdicts)
    assert any(v.startswith("3D study whose anatomy") for v in verdicts)
