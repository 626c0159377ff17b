"""registry/dicom.py reads headers and rejects what cannot be registered, with a reason."""

import shutil

import pydicom
import pytest

from registry.dicom import DicomRejected, iter_files, parse_date, read_header


def test_reads_the_registration_fields_of_a_ct(corpus):
    header = read_header(corpus / "CT_small.dcm")
    assert header.patient_id == "1CT1"
    assert header.issuer == "LOCAL"
    assert header.modality == "CT"
    assert header.study_uid.startswith("1.3.6.1.4.1.5962")
    assert header.sop_uid and header.series_uid
    assert header.size == (corpus / "CT_small.dcm").stat().st_size
    assert len(header.sha256) == 64
    assert header.transfer_syntax_uid == "1.2.840.10008.1.2.1"


def test_reads_big_endian_and_compressed_files(corpus):
    assert read_header(corpus / "MR_small_bigendian.dcm").modality == "MR"
    assert read_header(corpus / "JPEG2000.dcm").modality == "NM"
    assert read_header(corpus / "MR_small_RLE.dcm").patient_id == "4MR1"


@pytest.mark.parametrize(("name", "reason"), [
    ("MR_truncated.dcm", "truncated"),
    ("rtplan_truncated.dcm", "truncated"),
    ("no_meta.dcm", "not a DICOM file"),
    ("README.txt", "not a DICOM file"),
    ("zipMR.gz", "not a DICOM file"),
    ("ExplVR_BigEnd.dcm", "no PatientID"),
    ("JPEGLSNearLossless_08.dcm", "no StudyInstanceUID"),
    ("UN_sequence.dcm", "no SOPInstanceUID"),
    ("dicomdirtests/DICOMDIR", "DICOMDIR"),
])
def test_rejects_with_a_reason(corpus, name, reason):
    with pytest.raises(DicomRejected, match=reason):
        read_header(corpus / name)


def test_rejects_an_empty_file_and_a_missing_one(tmp_path):
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(DicomRejected, match="empty file"):
        read_header(empty)
    with pytest.raises(DicomRejected, match="cannot read the file"):
        read_header(tmp_path / "nowhere.dcm")


def test_rejects_a_file_cut_in_the_middle_of_its_header(corpus, tmp_path):
    cut = tmp_path / "cut.dcm"
    cut.write_bytes((corpus / "CT_small.dcm").read_bytes()[:700])
    with pytest.raises(DicomRejected):
        read_header(cut)


def test_rejects_an_invalid_uid(corpus, tmp_path):
    ds = pydicom.dcmread(corpus / "CT_small.dcm")
    ds.StudyInstanceUID = "1.2.abc"
    bad = tmp_path / "bad-uid.dcm"
    ds.save_as(bad)
    with pytest.raises(DicomRejected, match="StudyInstanceUID is not a valid UID"):
        read_header(bad)


def test_keeps_issuer_of_patient_id(corpus, tmp_path):
    ds = pydicom.dcmread(corpus / "CT_small.dcm")
    ds.IssuerOfPatientID = "ST-MARY"
    target = tmp_path / "issuer.dcm"
    ds.save_as(target)
    assert read_header(target).issuer == "ST-MARY"


def test_walks_folders_in_a_stable_order_and_skips_hidden_files(corpus, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    shutil.copy(corpus / "CT_small.dcm", tmp_path / "b" / "2.dcm")
    shutil.copy(corpus / "MR_small.dcm", tmp_path / "a" / "1.dcm")
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert found == ["a/1.dcm", "b/2.dcm"]


@pytest.mark.parametrize(("value", "expected"), [
    ("20240229", (2024, 2, 29)), ("20230229", None), ("2024", None), ("", None), (None, None),
])
def test_parse_date(value, expected):
    parsed = parse_date(value)
    assert (parsed.timetuple()[:3] if parsed else None) == expected
