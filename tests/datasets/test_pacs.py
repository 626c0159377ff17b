"""Beside a real PACS (Orthanc with DICOMweb): studies registered from QIDO-RS/WADO-RS
metadata without their pixels, fetched with WADO-RS while an export writes them and not kept
after; a PACS that is down changes nothing."""

from datetime import date

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from consent.models import Purpose
from consent.selectors import current_form
from consent.services import consent_record
from datasets.exports import export_run, version_dir
from datasets.models import DatasetVersion, VersionStatus, VersionStudy
from registry.demo import RECIPES, SyntheticPatient, write_study
from registry.dicomweb import SourceUnavailable, dicomweb_poll, instance_files
from registry.models import ImagingStudy, Instance, Patient
from tests.datasets.helpers import STEWARD, make_dataset
from tests.orthanc import free_port

BY_NAME = {r.description: r for r in RECIPES}


@pytest.fixture
def pacs_hospital(empty_pacs, tmp_path, settings, db):
    """Ann (yes to AI training) and Ben (said nothing) have chest X-rays and a knee MR in
    the PACS only; Consentry knows the PACS as the DICOMweb source ``pacs``."""
    people = {"ann": SyntheticPatient("MRN-ANN", "Anvers^Ann", date(1970, 1, 2), "F"),
              "ben": SyntheticPatient("MRN-BEN", "Bexley^Ben", date(1980, 3, 4), "M")}
    for key, recipes in {"ann": ["CR CHEST PA", "MR KNEE LEFT"],
                         "ben": ["CR CHEST PA"]}.items():
        for n, name in enumerate(recipes):
            for path in write_study(out_dir=tmp_path / "pacs-in", patient=people[key],
                                    recipe=BY_NAME[name], study_date=date(2025, 5, 1 + n),
                                    accession=f"{key}-{n}"):
                empty_pacs.upload(path)
    settings.CONSENTRY_DICOMWEB_SOURCES = {"pacs": empty_pacs.dicomweb}
    return empty_pacs


def permit_ann():
    consent_record(patient=Patient.objects.get(mrn="MRN-ANN"),
                   purpose=Purpose.objects.get(code="ai-training"), decision="permit",
                   actor=STEWARD, source="paper", form=current_form())


def test_poll_registers_metadata_without_pixels(pacs_hospital, data_dir):
    summary = dicomweb_poll(source="pacs", actor=STEWARD)
    assert summary.counts["registered"] == Instance.objects.count() > 0
    assert ImagingStudy.objects.count() == 3
    for instance in Instance.objects.all():
        assert instance.path.startswith("dicomweb://pacs/studies/")
    assert not list(data_dir.rglob("*.dcm"))  # nothing copied
    knee = ImagingStudy.objects.get(description="MR KNEE LEFT")
    assert (knee.patient.mrn, knee.modalities) == ("MRN-ANN", "MR")
    assert {e.details["source"] for e in AuditEvent.objects.filter(
        action="dicom.registered")} == {"dicomweb:pacs"}
    # A second poll finds nothing new and writes nothing.
    events = AuditEvent.objects.count()
    assert dicomweb_poll(source="pacs", actor=STEWARD).total == 0
    assert AuditEvent.objects.count() == events


def test_the_poll_command(pacs_hospital, capsys):
    call_command("dicomweb_poll")
    assert "pacs: registered" in capsys.readouterr().out


def test_a_pacs_that_is_down_changes_nothing(settings, db):
    settings.CONSENTRY_DICOMWEB_SOURCES = {"down": f"http://127.0.0.1:{free_port()}/dicom-web"}
    events = AuditEvent.objects.count()
    with pytest.raises(SourceUnavailable, match="did not answer QIDO-RS"):
        dicomweb_poll(source="down", actor=STEWARD)
    with pytest.raises(CommandError, match="could not poll: down"):
        call_command("dicomweb_poll", "--source", "down")
    with pytest.raises(SourceUnavailable, match="no DICOMweb source"):
        dicomweb_poll(source="nowhere", actor=STEWARD)
    assert not Instance.objects.exists()
    assert AuditEvent.objects.count() == events


def test_instances_are_fetched_for_the_block_and_removed_after(pacs_hospital, data_dir):
    dicomweb_poll(source="pacs", actor=STEWARD)
    instances = list(Instance.objects.all())
    with instance_files(instances) as files:
        assert set(files) == {i.pk for i in instances}
        import pydicom

        for instance in instances:
            assert pydicom.dcmread(files[instance.pk]).SOPInstanceUID == instance.sop_uid
    assert not list(data_dir.rglob("*.dcm"))


def test_an_export_fetches_pacs_studies_and_keeps_nothing_but_the_export(
        pacs_hospital, steward, data_dir, inline_celery):
    dicomweb_poll(source="pacs", actor=STEWARD)
    permit_ann()
    dataset = make_dataset(steward)
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="t")
    version = export_run(version_id=version.pk)
    assert version.status == VersionStatus.COMPLETE
    included = {f.study.description: f.included for f in
                VersionStudy.objects.filter(version=version).select_related("study")
                if f.study.patient.mrn == "MRN-ANN"}
    assert included == {"CR CHEST PA": True, "MR KNEE LEFT": True}
    written = list(version_dir(version).rglob("*.dcm"))
    assert len(written) == version.files_written == Instance.objects.filter(
        series__study__patient__mrn="MRN-ANN").count()
    # Only the export's own files remain: the WADO-RS copies are gone.
    assert set(data_dir.rglob("*.dcm")) == set(written)
    call_command("verify_export", str(version_dir(version)))


def test_an_export_while_the_pacs_is_down_records_no_fate_and_can_resume(
        pacs_hospital, steward, settings, data_dir):
    dicomweb_poll(source="pacs", actor=STEWARD)
    permit_ann()
    dataset = make_dataset(steward)
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="t")
    settings.CONSENTRY_DICOMWEB_SOURCES = {"pacs": f"http://127.0.0.1:{free_port()}/dw"}
    with pytest.raises(SourceUnavailable):
        export_run(version_id=version.pk)
    # Ben's study (no consent) needs no file; no consented study was left out for it.
    assert not VersionStudy.objects.filter(version=version, included=True).exists()
    assert not VersionStudy.objects.filter(version=version, study__patient__mrn="MRN-ANN"
                                           ).exists()
    settings.CONSENTRY_DICOMWEB_SOURCES = {"pacs": pacs_hospital.dicomweb}
    version = export_run(version_id=version.pk)
    assert version.status == VersionStatus.COMPLETE
    assert VersionStudy.objects.filter(version=version, included=True).count() == 2
