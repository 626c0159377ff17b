"""registry/dicom.py on damaged and unusual files: what cannot be registered is refused with
a reason a person can act on and nothing is registered; unusual but readable values (other
character sets, a mislabelled one, a number that is not one) are registered as pydicom
reads them. Files are pydicom's test files, edited."""

import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

import registry.dicom
from audit.ledger import Actor
from registry.dicom import DicomRejected, read_header
from registry.models import ImagingStudy, Instance, Patient
from registry.registration import Status, dicom_ingest_paths

ACTOR = Actor(label="tester", role="staff")


def ct() -> pydicom.FileDataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def corpus_bytes(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def with_raw_value(ds: pydicom.Dataset, tag: int, vr: str, value: bytes) -> pydicom.Dataset:
    """``ds`` with the element's value stored as these bytes, as another writer would."""
    if len(value) % 2:
        value += b" "
    ds[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
    return ds


def replace_bytes(path: Path, old: bytes, new: bytes) -> None:
    """Where pydicom would not write the bytes wanted (it re-encodes a name it can read)."""
    data = path.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    path.write_bytes(data.replace(old, new))


def assert_refused_and_nothing_registered(path: Path, reason: str) -> None:
    summary = dicom_ingest_paths(paths=[path], actor=ACTOR, source="test")
    assert summary.counts == {Status.REJECTED: 1}
    assert reason in summary.problems[0].reason, summary.problems[0].reason
    assert not Instance.objects.exists()
    assert not ImagingStudy.objects.exists()
    assert not Patient.objects.exists()


def test_a_patient_id_longer_than_64_characters_is_refused(db, tmp_path):
    """LO holds 64 characters, and so does the column (PostgreSQL would refuse the batch)."""
    ds = with_raw_value(ct(), 0x00100020, "LO", b"P" * 65)
    path = tmp_path / "long-id.dcm"
    ds.save_as(path)
    assert_refused_and_nothing_registered(path, "PatientID is longer than 64 characters")


def test_a_file_cut_inside_a_header_value_is_refused(db, tmp_path):
    """Cut inside Series Instance UID: pydicom reads the value short without complaint."""
    data = corpus_bytes("CT_small.dcm")
    series = data.index(struct.pack("<HH2s", 0x0020, 0x000E, b"UI"))
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:series + 8 + 10])
    assert_refused_and_nothing_registered(
        path, f"truncated: element (0020,000E) needs 46 bytes at offset {series + 8}")


def test_a_file_cut_inside_its_pixel_data_header_is_refused_as_malformed(db, tmp_path):
    """Big endian, cut two bytes into the pixel data's 32-bit length: pydicom fails with a
    struct error, which is reported, not raised."""
    data = corpus_bytes("MR_small_bigendian.dcm")
    pixels = data.rindex(struct.pack(">HH2s", 0x7FE0, 0x0010, b"OW"))
    path = tmp_path / "cut-in-pixels.dcm"
    path.write_bytes(data[:pixels + 10])
    assert_refused_and_nothing_registered(path, "malformed DICOM: error: unpack requires")


def test_an_item_delimiter_out_of_place_is_refused(db, tmp_path):
    """pydicom ends the dataset at an Item Delimitation Item where no item is open: the file
    was registered, its pixel data and all elements after the delimiter unseen (and an
    export then wrote it without them)."""
    data = corpus_bytes("CT_small.dcm")
    at = data.index(struct.pack("<HH2s", 0x0028, 0x0002, b"US"))
    path = tmp_path / "delimiter.dcm"
    path.write_bytes(data[:at] + struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + data[at:])
    assert_refused_and_nothing_registered(
        path, f"the dataset ends at byte {at + 8} of {len(data) + 8}: what follows cannot")


def test_a_folder_where_a_file_is_expected_is_refused_with_the_system_s_reason(tmp_path):
    with pytest.raises(DicomRejected, match=r"cannot read the file: \[Errno 21\] Is a direc"):
        read_header(tmp_path)


def test_a_number_that_is_not_one_is_left_out_not_fatal(db, tmp_path):
    """Instance Number '12a' (an IS must be an integer): the file is registered, the number
    left out, as for one beyond the column's range."""
    ds = with_raw_value(ct(), 0x00200013, "IS", b"12a")
    path = tmp_path / "bad-number.dcm"
    ds.save_as(path)
    summary = dicom_ingest_paths(paths=[path], actor=ACTOR, source="test")
    assert summary.counts == {Status.REGISTERED: 1}
    assert Instance.objects.get(sop_uid=ds.SOPInstanceUID).instance_number is None


def cyrillic_with_two_descriptions(tmp_path: Path) -> Path:
    """chrRuss.dcm (ISO_IR 144) with a Study Description of two values."""
    ds = pydicom.dcmread(get_charset_files("chrRuss.dcm")[0])
    with_raw_value(ds, 0x00081030, "LO", "Грудь\\Живот".encode("iso8859_5"))
    path = tmp_path / "russian.dcm"
    ds.save_as(path)
    return path


def test_text_in_another_character_set_is_decoded_by_it(tmp_path):
    """ISO_IR 144 (Cyrillic): decoded by it, not as the default repertoire, and a value of
    several values kept with its backslashes."""
    header = read_header(cyrillic_with_two_descriptions(tmp_path))
    # chrRuss.dcm's name as stored: Cyrillic letters and Latin look-alikes mixed.
    assert header.patient_name == "Люкceмбypг"  # noqa: RUF001
    assert header.study_description == "Грудь\\Живот"


def latin1_labelled_utf8(tmp_path: Path) -> Path:
    ds = ct()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Mxller^Hans"
    path = tmp_path / "mislabelled.dcm"
    ds.save_as(path)
    replace_bytes(path, b"Mxller^Hans", "Müller^Hans".encode("latin-1"))
    return path


def test_latin1_text_in_a_file_labelled_utf8_is_registered_not_refused(tmp_path):
    """Not UTF-8 at all (a common mislabelling): the file is registered, the byte that is
    not UTF-8 shown as such (U+FFFD), the rest of the name kept."""
    assert read_header(latin1_labelled_utf8(tmp_path)).patient_name == "M\ufffdller^Hans"


def non_ascii_code_string(tmp_path: Path) -> Path:
    ds = with_raw_value(ct(), 0x00180015, "CS", "KNÄE".encode("latin-1"))
    path = tmp_path / "non-ascii-code.dcm"
    ds.save_as(path)
    return path


def test_a_code_string_with_a_non_ascii_byte_is_registered_as_pydicom_reads_it(tmp_path):
    """Body Part Examined 'KNÄE' (a code string allows only ASCII): not refused."""
    assert read_header(non_ascii_code_string(tmp_path)).body_part == "KNÄE"


def name_with_an_empty_component_group(tmp_path: Path) -> Path:
    """No Specific Character Set (the default repertoire), a name ending in '='."""
    ds = ct()
    del ds.SpecificCharacterSet
    ds.PatientName = "Doe^John=X"
    path = tmp_path / "empty-group.dcm"
    ds.save_as(path)
    replace_bytes(path, b"Doe^John=X", b"Doe^John= ")
    return path


def test_an_empty_trailing_component_group_of_a_name_is_dropped(tmp_path):
    """As pydicom does (chrX1.dcm: 'Wang^XiaoDong=王^小東='): searched by name, the
    patient is 'Doe^John', not 'Doe^John='."""
    assert read_header(name_with_an_empty_component_group(tmp_path)).patient_name == (
        "Doe^John")


def backslash_in_long_text(tmp_path: Path) -> Path:
    ds = ct()
    del ds.SpecificCharacterSet  # the default repertoire, which registration decodes itself
    with_raw_value(ds, 0x00081030, "LT", b"Chest \\ Abdomen")
    path = tmp_path / "long-text.dcm"
    ds.save_as(path)
    return path


def test_a_backslash_in_single_valued_text_is_text(tmp_path):
    """A writer that encodes Study Description as LT: its one value is kept as written."""
    assert read_header(backslash_in_long_text(tmp_path)).study_description == (
        "Chest \\ Abdomen")


@pytest.mark.parametrize("name", sorted(
    Path(p).name for p in get_charset_files("*.dcm") if "SQEncoding" not in p))
def test_reading_values_from_their_bytes_gives_pydicoms_answers_for_each_character_set(
        monkeypatch, name):
    path = get_charset_files(name)[0]
    fast = read_header(path)
    monkeypatch.setattr(registry.dicom, "FAST_TEXT", False)
    assert read_header(path) == fast


@pytest.mark.parametrize("edited", [cyrillic_with_two_descriptions, latin1_labelled_utf8,
                                    non_ascii_code_string, name_with_an_empty_component_group,
                                    backslash_in_long_text])
def test_reading_values_from_their_bytes_gives_pydicoms_answers_for_unusual_values(
        monkeypatch, tmp_path, edited):
    path = edited(tmp_path)
    fast = read_header(path)
    monkeypatch.setattr(registry.dicom, "FAST_TEXT", False)
    assert read_header(path) == fast


def test_reading_values_from_their_bytes_gives_pydicoms_answers_over_pydicoms_corpus(
        corpus, monkeypatch):
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    fast = {}
    for path in files:
        try:
            fast[path] = read_header(path)
        except DicomRejected as exc:
            fast[path] = exc.reason
    assert sum(isinstance(h, registry.dicom.DicomHeader) for h in fast.values()) > 100
    monkeypatch.setattr(registry.dicom, "FAST_TEXT", False)
    for path in files:
        try:
            assert read_header(path) == fast[path], path
        except DicomRejected as exc:
            assert exc.reason == fast[path], path
