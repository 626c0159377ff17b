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
from registry.identifiers import mrn_digest
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
    consent_record(patient=Patient.objects.get(mrn_index=mrn_digest("MRN-ANN")),
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


def test_a_pacs_that_drops_connections_is_asked_once_per_poll(settings, db):
    """Consentry retries on its own terms (the periodic poll, an export's resume): the
    DICOMweb client must not also retry a PACS that is down, for half a minute per request,
    with a worker held the whole time."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    attempts = []

    def drop_every_connection() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            attempts.append(1)
            connection.close()

    threading.Thread(target=drop_every_connection, daemon=True).start()
    port = listener.getsockname()[1]
    settings.CONSENTRY_DICOMWEB_SOURCES = {"flaky": f"http://127.0.0.1:{port}/dicom-web"}
    try:
        with pytest.raises(SourceUnavailable, match="did not answer QIDO-RS"):
            dicomweb_poll(source="flaky", actor=STEWARD)
    finally:
        listener.close()
    assert len(attempts) == 1
    assert not Instance.objects.exists()


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
        series__study__patient__mrn_index=mrn_digest("MRN-ANN")).count()
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
    assert not VersionStudy.objects.filter(
        version=version, study__patient__mrn_index=mrn_digest("MRN-ANN")).exists()
    settings.CONSENTRY_DICOMWEB_SOURCES = {"pacs": pacs_hospital.dicomweb}
    version = export_run(version_id=version.pk)
    assert version.status == VersionStatus.COMPLETE
    assert VersionStudy.objects.filter(version=version, included=True).count() == 2


def test_studies_without_consent_are_never_fetched(pacs_hospital, steward, settings):
    dicomweb_poll(source="pacs", actor=STEWARD)
    dataset = make_dataset(steward)  # nobody said yes to AI training
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="t")
    settings.CONSENTRY_DICOMWEB_SOURCES = {"pacs": f"http://127.0.0.1:{free_port()}/dw"}
    version = export_run(version_id=version.pk)
    assert version.status == VersionStatus.COMPLETE
    assert VersionStudy.objects.filter(version=version, included=False).count() == 3


# Delivery to a research PACS (a second Orthanc) -------------------------------------------


@pytest.fixture
def research(research_pacs, settings):
    research_pacs.clear()
    settings.CONSENTRY_DESTINATIONS = {
        "research-stow": f"stow+{research_pacs.dicomweb}",
        "research-dicom": f"dicom://{research_pacs.aet}@127.0.0.1:{research_pacs.dicom_port}",
        "nobody-home": f"dicom://NOBODY@127.0.0.1:{free_port()}",
    }
    yield research_pacs
    research_pacs.clear()


def export_to(destination, steward, django_capture_on_commit_callbacks):
    from datasets.delivery import dataset_destination_set
    from tests.datasets.helpers import run_export

    dicomweb_poll(source="pacs", actor=STEWARD)
    permit_ann()
    dataset = make_dataset(steward)
    dataset_destination_set(dataset=dataset, name=destination, actor=STEWARD)
    return run_export(dataset, django_capture_on_commit_callbacks)


def included_pseudo_uids(version):
    return set(VersionStudy.objects.filter(version=version, included=True)
               .values_list("pseudo_study_uid", flat=True))


@pytest.mark.parametrize("destination", ["research-stow", "research-dicom"])
def test_the_research_pacs_holds_exactly_the_included_studies_deidentified(
        pacs_hospital, research, steward, destination, django_capture_on_commit_callbacks):
    from datasets.models import Delivery

    version = export_to(destination, steward, django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    expected = included_pseudo_uids(version)
    assert len(expected) == 2  # Ann's two studies; Ben's has no consent
    assert research.study_uids() == expected
    originals = set(ImagingStudy.objects.values_list("study_uid", flat=True))
    for orthanc_study in research.get("/studies"):
        tags = research.get(f"/studies/{orthanc_study}")["PatientMainDicomTags"]
        assert "Anvers" not in tags.get("PatientName", "")
        assert tags.get("PatientID") not in ("MRN-ANN", "MRN-BEN")
    assert not originals & research.study_uids()
    deliveries = Delivery.objects.filter(version_study__version=version)
    assert {(d.destination, d.status) for d in deliveries} == {(destination, "sent")}
    sent = AuditEvent.objects.filter(action="export.sent")
    assert sent.count() == 2
    assert {e.details["destination"] for e in sent} == {destination}
    assert {e.details["pseudonymous_study_uid"] for e in sent} == expected


def test_a_destination_that_is_down_is_retried_and_shown_on_the_version_page(
        pacs_hospital, research, steward, settings, django_capture_on_commit_callbacks):
    from datasets.delivery import delivery_run
    from datasets.models import Delivery
    from outbox.models import OutboxMessage
    from tests.clients import signed_in

    version = export_to("nobody-home", steward, django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    deliveries = Delivery.objects.filter(version_study__version=version)
    assert {d.status for d in deliveries} == {"failed"}
    assert all("NOBODY" in d.error or "nobody-home" in d.error for d in deliveries)
    message = OutboxMessage.objects.get(kind="datasets.delivery_requested")
    assert (message.status, "not delivered" in message.last_error) == ("pending", True)
    assert not AuditEvent.objects.filter(action="export.sent").exists()
    assert research.study_uids() == set()
    page = signed_in(steward).get(f"/datasets/versions/{version.pk}/")
    assert b"Failed (retrying)" in page.content and b"nobody-home" in page.content
    # The node comes back (here: the name now points at the research PACS); the retry
    # sends every study once.
    settings.CONSENTRY_DESTINATIONS = {**settings.CONSENTRY_DESTINATIONS,
                                       "nobody-home": settings.CONSENTRY_DESTINATIONS[
                                           "research-dicom"]}
    delivery_run({"version_id": version.pk})
    assert {d.status for d in deliveries.all()} == {"sent"}
    assert research.study_uids() == included_pseudo_uids(version)
    delivery_run({"version_id": version.pk})  # idempotent: nothing is sent twice
    assert AuditEvent.objects.filter(action="export.sent").count() == 2


def test_a_withdrawal_after_the_export_withholds_the_study(
        pacs_hospital, research, steward, settings, django_capture_on_commit_callbacks):
    from consent.services import consent_withdraw
    from datasets.delivery import delivery_run
    from datasets.models import Delivery

    version = export_to("nobody-home", steward, django_capture_on_commit_callbacks)
    consent_withdraw(patient=Patient.objects.get(mrn_index=mrn_digest("MRN-ANN")),
                     purpose=Purpose.objects.get(code="ai-training"), actor=STEWARD,
                     source="paper", form=current_form())
    delivery_run({"version_id": version.pk})
    assert {d.status for d in Delivery.objects.filter(version_study__version=version)} == \
        {"withheld"}
    assert AuditEvent.objects.filter(action="export.withheld").count() == 2
    assert research.study_uids() == set()


def test_bad_destinations_are_refused_and_change_nothing(steward, settings, db):
    from django.core.exceptions import ValidationError

    from datasets.delivery import dataset_destination_set
    from datasets.models import DatasetDestination

    settings.CONSENTRY_DESTINATIONS = {"odd": "ftp://somewhere", "port": "dicom://A@h:99999"}
    dataset = make_dataset(steward)
    events = AuditEvent.objects.count()
    for name in ("unknown", "odd", "port"):
        with pytest.raises(ValidationError):
            dataset_destination_set(dataset=dataset, name=name, actor=STEWARD)
        with pytest.raises(CommandError):
            call_command("dataset_destination", str(dataset.pk), name)
    assert not DatasetDestination.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_malformed_destination_is_a_system_check_error(settings):
    from datasets.apps import destinations_well_formed

    settings.CONSENTRY_DESTINATIONS = {"ok": "stow+http://pacs/dicom-web", "odd": "ftp://x"}
    assert [e.id for e in destinations_well_formed(None)] == ["consentry.E001"]
