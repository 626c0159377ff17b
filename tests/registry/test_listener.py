"""The DICOM listener: C-STORE from pynetdicom's SCU and from a real Orthanc, registered
like ``ingest_dicom``; C-ECHO; the calling AE allow-list; a bad dataset answered with a
failure status and nothing registered."""

import time

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification

from audit.models import AuditEvent
from registry.listener import CANNOT_UNDERSTAND, listener_start
from registry.models import ImagingStudy, Instance
from tests.orthanc import free_port

pytestmark = pytest.mark.usefixtures("committed_db")


SERVERS = {}


@pytest.fixture
def listener():
    """A listener on a free port that accepts MODALITY1 and the test PACS."""
    port = free_port()
    server = listener_start(port=port, ae_title="CONSENTRY", host="127.0.0.1", block=False,
                            allowed_aes=["MODALITY1", "HOSPITALPACS"])
    SERVERS[port] = server
    yield port
    server.shutdown()
    del SERVERS[port]


def settled(port: int) -> None:
    """Wait until the listener's association threads have ended: their last handler (the
    ledger event) runs there after the sender has already seen the release."""
    for _ in range(600):
        if not SERVERS[port].active_associations:
            return
        time.sleep(0.05)
    raise AssertionError("the listener's associations did not end")


def scu(port: int, ae_title: str = "MODALITY1"):
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(MRImageStorage)
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title="CONSENTRY")


def send(port: int, *datasets, ae_title: str = "MODALITY1") -> list[int]:
    assoc = scu(port, ae_title)
    assert assoc.is_established
    try:
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()
        settled(port)


def received_events(port: int):
    settled(port)
    return list(AuditEvent.objects.filter(action="study.received").order_by("pk"))


def test_instances_sent_by_a_modality_are_stored_and_registered(listener, corpus, data_dir):
    ct = pydicom.dcmread(corpus / "CT_small.dcm")
    mr = pydicom.dcmread(corpus / "MR_small.dcm")
    assert send(listener, ct, mr) == [0, 0]
    stored = {i.sop_uid: i for i in Instance.objects.all()}
    assert set(stored) == {ct.SOPInstanceUID, mr.SOPInstanceUID}
    for instance in stored.values():
        assert instance.path.startswith(str(data_dir / "dicom" / "received"))
        assert pydicom.dcmread(instance.path).SOPInstanceUID == instance.sop_uid
    assert ImagingStudy.objects.filter(study_uid=ct.StudyInstanceUID).exists()
    [event] = received_events(listener)
    assert event.details["calling_ae"] == "MODALITY1"
    assert (event.details["received"], event.details["registered"]) == (2, 2)
    assert set(event.details["studies"]) == {ct.StudyInstanceUID, mr.StudyInstanceUID}
    registered = AuditEvent.objects.filter(action="dicom.registered")
    assert {e.details["source"] for e in registered} == {"dicom-network"}
    assert {e.correlation_id for e in registered} == {event.correlation_id}


def test_sending_again_is_known_not_registered_twice(listener, corpus):
    ct = pydicom.dcmread(corpus / "CT_small.dcm")
    send(listener, ct)
    assert send(listener, ct) == [0]
    assert Instance.objects.count() == 1
    assert [e.details["known"] for e in received_events(listener)] == [0, 1]


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda ds: delattr(ds, "PatientID"), "no PatientID"),
    (lambda ds: setattr(ds, "StudyInstanceUID", "not-a-uid"), "StudyInstanceUID"),
    (lambda ds: delattr(ds, "SOPInstanceUID"), None),
])
def test_a_bad_dataset_gets_a_failure_status_and_changes_nothing(listener, corpus, data_dir,
                                                                 damage, reason):
    ds = pydicom.dcmread(corpus / "CT_small.dcm")
    damage(ds)
    assoc = scu(listener)
    try:
        status = assoc.send_c_store(ds) if reason else None
        if reason is None:
            # Without a SOPInstanceUID pynetdicom's SCU refuses to send: the listener is
            # never asked. Send a good one next on the same association to show it is up.
            with pytest.raises(AttributeError):
                assoc.send_c_store(ds)
        else:
            assert status.Status == CANNOT_UNDERSTAND
            assert reason in status.ErrorComment
        assert assoc.send_c_echo().Status == 0
    finally:
        assoc.release()
    assert not Instance.objects.exists()
    assert not list((data_dir / "dicom").rglob("*.dcm"))
    if reason:
        [event] = received_events(listener)
        assert (event.details["rejected"], event.outcome) == (1, "failure")


def test_c_echo_is_answered(listener):
    assoc = scu(listener)
    try:
        assert assoc.send_c_echo().Status == 0
    finally:
        assoc.release()
    assert received_events(listener) == []


def test_an_unknown_calling_ae_is_refused(listener, corpus):
    assoc = scu(listener, ae_title="STRANGER")
    assert assoc.is_rejected
    assert not Instance.objects.exists()
    assert received_events(listener) == []


def test_orthanc_sends_a_study_to_the_listener(listener, empty_pacs, corpus):
    orthanc_id = empty_pacs.upload(corpus / "CT_small.dcm")
    empty_pacs.add_modality("consentry", "CONSENTRY", listener)
    empty_pacs.post("/modalities/consentry/store", {"Resources": [orthanc_id],
                                                    "Synchronous": True})
    ct = pydicom.dcmread(corpus / "CT_small.dcm")
    assert Instance.objects.get().sop_uid == ct.SOPInstanceUID
    [event] = received_events(listener)
    assert event.details["calling_ae"] == "HOSPITALPACS"
    assert event.details["registered"] == 1


def test_the_command_refuses_a_bad_port_or_ae_title():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--port"):
        call_command("dicom_listener", "--port", "70000")
    with pytest.raises(CommandError, match="--ae-title"):
        call_command("dicom_listener", "--ae-title", "A" * 17)
