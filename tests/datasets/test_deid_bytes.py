"""The byte-level writer against the pydicom path it replaces, as an oracle: for every file
of pydicom's test files the pydicom path accepts, and for the synthetic studies the export
tests use, both outputs parse to the same dataset element for element (tags, VRs, values,
sequences item by item, file meta, preamble) with the same pixel bytes, and dciodvfy finds
no error in the new one that it did not find in the old. Broken input is refused with
InvalidDicomError before anything is written."""

import struct
from datetime import date
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.errors import InvalidDicomError

from datasets.deid import ConsentStamp, DeidContext, Option
from datasets.deid_bytes import BYTES, PYDICOM
from datasets.deid_write import read_source, write_deidentified, write_deidentified_pydicom
from registry.demo import RECIPES, SyntheticPatient, write_study
from tests.datasets.test_deid_validity import CORPUS, DCIODVFY, errors

YES = ConsentStamp("YES")
CONTEXTS = {"all-options": DeidContext(secret=b"dataset-1", options=frozenset(Option.ALL)),
            "no-options": DeidContext(secret=b"dataset-2")}
TESTDATA = sorted({Path(p).resolve().relative_to(CORPUS.resolve()).as_posix()
                   for p in get_testdata_files() if Path(p).is_file()})
# Files the pydicom path writes out although they are broken: the byte level refuses them.
TRUNCATED = {"rtplan_truncated.dcm"}


def same(ours: pydicom.Dataset, theirs: pydicom.Dataset, where: str = "") -> list[str]:
    """Differences between two parsed datasets, element by element, item by item."""
    found = []
    if list(ours.keys()) != list(theirs.keys()):
        found.append(f"{where}tags differ: {sorted(set(ours.keys()) ^ set(theirs.keys()))}")
    for tag in set(ours.keys()) & set(theirs.keys()):
        a, b = ours[tag], theirs[tag]
        if a.VR != b.VR:
            found.append(f"{where}{tag} VR {a.VR} != {b.VR}")
        elif a.VR == "SQ":
            if len(a.value) != len(b.value):
                found.append(f"{where}{tag} items {len(a.value)} != {len(b.value)}")
            for n, (x, y) in enumerate(zip(a.value, b.value, strict=False)):
                found += same(x, y, f"{where}{tag}[{n}].")
        elif a.value != b.value:
            found.append(f"{where}{tag} {a.value!r:.80} != {b.value!r:.80}")
    return found


def both(source: Path, tmp_path: Path, context: DeidContext) -> tuple[Path, Path]:
    """The pydicom path's output (skipped when it refuses the file) and the new one's."""
    try:
        old, _ = write_deidentified_pydicom(str(source), tmp_path / "old", context,
                                            consent=YES)
    except Exception as exc:  # whatever the current path refuses
        pytest.skip(f"the pydicom path refuses it: {type(exc).__name__}")
    new, size = write_deidentified(str(source), tmp_path / "new", context, consent=YES)
    assert size == new.stat().st_size
    assert new.relative_to(tmp_path / "new") == old.relative_to(tmp_path / "old")
    return old, new


def assert_same_file(old: Path, new: Path) -> None:
    theirs, ours = pydicom.dcmread(old), pydicom.dcmread(new)
    assert ours.preamble == theirs.preamble
    assert same(ours.file_meta, theirs.file_meta) == []
    assert same(ours, theirs) == []


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("name", TESTDATA)
def test_byte_level_output_parses_as_the_pydicom_paths(name, context, tmp_path):
    if name in TRUNCATED:
        with pytest.raises(InvalidDicomError, match="past the end"):
            write_deidentified(str(CORPUS / name), tmp_path / "new", CONTEXTS[context],
                               consent=YES)
        assert not (tmp_path / "new").exists()
        return
    old, new = both(CORPUS / name, tmp_path, CONTEXTS[context])
    assert_same_file(old, new)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm",
                                  "rtdose.dcm", "examples_ybr_color.dcm", "rtplan.dcm",
                                  "test-SR.dcm"])
def test_common_files_take_the_byte_level_route(name):
    # Guards the oracle above from passing only because everything fell back.
    assert read_source(str(CORPUS / name), CONTEXTS["all-options"]).route == BYTES


def test_big_endian_takes_the_pydicom_route():
    header = read_source(str(CORPUS / "MR_small_bigendian.dcm"), CONTEXTS["all-options"])
    assert header.route == PYDICOM


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> list[Path]:
    """The studies the export tests register: every recipe, made-up patients."""
    out = tmp_path_factory.mktemp("synthetic")
    people = [SyntheticPatient("MRN-QX731", "Quillfeather^Ottoline", date(1961, 7, 14), "F"),
              SyntheticPatient("MRN-ZB448", "Brackenbury^Lysander", date(1948, 2, 3), "M")]
    files = []
    for n, person in enumerate(people):
        for recipe in RECIPES:
            files += write_study(out_dir=out, patient=person, recipe=recipe,
                                 study_date=date(2025, 1 + n, 9), accession=f"ACC-{n}77{n}")
    return files


@pytest.mark.parametrize("context", CONTEXTS)
def test_synthetic_studies_give_the_same_files(synthetic, context, tmp_path):
    for n, source in enumerate(synthetic):
        assert read_source(str(source), CONTEXTS[context]).route == BYTES
        old, new = both(source, tmp_path / str(n), CONTEXTS[context])
        assert_same_file(old, new)
        assert b"Quillfeather" not in new.read_bytes()


@pytest.mark.skipif(DCIODVFY is None, reason="needs dicom3tools' dciodvfy")
@pytest.mark.parametrize("name", TESTDATA)
def test_no_validator_error_the_pydicom_path_did_not_have(name, tmp_path):
    if name in TRUNCATED:
        pytest.skip("refused by the byte level (above)")
    old, new = both(CORPUS / name, tmp_path, CONTEXTS["all-options"])
    assert errors(new) - errors(old) == set()


# Broken input: refused, clearly, and nothing written.

def ct_small() -> bytes:
    return (CORPUS / "CT_small.dcm").read_bytes()


def refused(tmp_path: Path, data: bytes, match: str) -> None:
    source = tmp_path / "broken.dcm"
    source.write_bytes(data)
    with pytest.raises(InvalidDicomError, match=match):
        read_source(str(source), CONTEXTS["all-options"])
    with pytest.raises(InvalidDicomError, match=match):
        write_deidentified(str(source), tmp_path / "out", CONTEXTS["all-options"],
                           consent=YES)
    assert not (tmp_path / "out").exists()


def element_at(data: bytes, tag: int) -> int:
    """Offset of a top-level explicit VR little endian element's tag in ``data``."""
    return data.index(struct.pack("<HH", tag >> 16, tag & 0xFFFF))


@pytest.mark.parametrize("cut", [300, 301, 302, 303, 500, 1000])
def test_a_truncated_header_is_refused(tmp_path, cut):
    refused(tmp_path, ct_small()[:cut], "truncated|past the end|ends")


def test_a_length_past_the_end_of_the_file_is_refused(tmp_path):
    data = bytearray(ct_small())
    at = element_at(data, 0x00100010)  # Patient's Name, PN: two-byte length
    struct.pack_into("<H", data, at + 6, 0xFFF0)
    data = bytes(data[:at + 8 + 0x100])
    refused(tmp_path, data, "past the end")


def test_a_length_that_lands_inside_another_element_is_refused(tmp_path):
    data = bytearray(ct_small())
    at = element_at(data, 0x00100010)
    (length,) = struct.unpack_from("<H", data, at + 6)
    struct.pack_into("<H", data, at + 6, length + 6)  # lies by a few bytes
    refused(tmp_path, bytes(data), "no valid VR|out of order")


def test_a_file_that_changed_after_its_header_was_read_is_read_again(tmp_path):
    source = tmp_path / "moving.dcm"
    source.write_bytes(ct_small())
    header = read_source(str(source), CONTEXTS["all-options"])
    mr = (CORPUS / "MR_small.dcm").read_bytes()
    source.write_bytes(mr)
    written, _ = write_deidentified(str(source), tmp_path / "out", CONTEXTS["all-options"],
                                    consent=YES, header=header)
    assert pydicom.dcmread(written).Modality == "MR"


@pytest.mark.parametrize("instance", ["1.2.3", "1.2.34", "2.25.1234567890123456789", ""])
@pytest.mark.parametrize("syntax", [pydicom.uid.ExplicitVRLittleEndian,
                                    pydicom.uid.ImplicitVRLittleEndian,
                                    pydicom.uid.JPEG2000Lossless])
def test_the_file_meta_is_encoded_as_pydicom_encodes_it(instance, syntax):
    from datasets.deid_bytes import _file_meta_by_pydicom, _file_meta_encoded

    sop_class = pydicom.uid.CTImageStorage
    if not instance:  # pydicom refuses an empty required UID; so must we
        with pytest.raises(AttributeError):
            _file_meta_encoded(sop_class, instance, syntax)
        return
    assert _file_meta_encoded(sop_class, instance, syntax) == \
        _file_meta_by_pydicom(sop_class, instance, syntax)
