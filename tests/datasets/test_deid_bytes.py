"""The byte-level writer against the pydicom path it replaces, as an oracle: for every file
of pydicom's test files the pydicom path accepts, and for the synthetic studies the export
tests use, both outputs parse to the same dataset element for element (tags, VRs, values,
sequences item by item, file meta, preamble) with the same pixel bytes, and dciodvfy finds
no error in the new one that it did not find in the old. Broken input is refused with
InvalidDicomError before anything is written."""

import io
import struct
from datetime import date
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.datadict import dictionary_VR as dictionary_vr
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


# Files the walk must read past its first read (FIRST_READ bytes): a vendor's private blob
# (a CSA header is often larger) puts every later structure across that boundary in turn.
# Wherever it falls, the file is walked to the end and written as the pydicom path does.

def ct_dataset() -> pydicom.FileDataset:
    return pydicom.dcmread(CORPUS / "CT_small.dcm")


def saved(ds: pydicom.Dataset, path: Path, *, implicit: bool = False) -> Path:
    ds.file_meta.TransferSyntaxUID = (pydicom.uid.ImplicitVRLittleEndian if implicit
                                      else pydicom.uid.ExplicitVRLittleEndian)
    ds.save_as(path, enforce_file_format=True)
    return path


def code(value: str, meaning: str) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99LOCAL", meaning
    return item


def with_blob_and_protocol(size: int) -> pydicom.FileDataset:
    """CT_small with a private blob of ``size`` bytes, then a Performed Protocol Code
    Sequence of undefined length: one item of defined length, one of undefined length
    holding a long-VR text and a nested sequence of undefined length."""
    ds = ct_dataset()
    block = ds.private_block(0x0011, "ACME BLOB", create=True)
    block.add_new(0x01, "OB", b"\x5a" * size)
    first = code("P1", "HEAD ROUTINE")
    second = code("P2", "HEAD CONTRAST")
    second.is_undefined_length_sequence_item = True
    second.add_new(0x0040A160, "UT", "Protocol note kept by the profile")  # Text Value
    nested = code("P3", "HEAD")
    nested.is_undefined_length_sequence_item = True
    second.EquivalentCodeSequence = pydicom.Sequence([nested])
    second["EquivalentCodeSequence"].is_undefined_length = True
    ds.PerformedProtocolCodeSequence = pydicom.Sequence([first, second])
    ds["PerformedProtocolCodeSequence"].is_undefined_length = True
    return ds


def assert_both_agree(source: Path, tmp_path: Path, route: str,
                      context: DeidContext = CONTEXTS["all-options"]) -> Path:
    """The route the walk takes for ``source``, and the same output as the pydicom path."""
    assert read_source(str(source), context).route == route
    old, _ = write_deidentified_pydicom(str(source), tmp_path / "old", context, consent=YES)
    new, _ = write_deidentified(str(source), tmp_path / "new", context, consent=YES)
    assert_same_file(old, new)
    return new


@pytest.mark.parametrize("implicit", [False, True])
def test_a_header_larger_than_the_first_read_is_walked_wherever_the_read_ends(
        implicit, tmp_path):
    from datasets.deid_bytes import FIRST_READ

    probe = saved(with_blob_and_protocol(1000), tmp_path / "probe.dcm", implicit=implicit)
    # The blob is private, so dropped: wherever the read ends, the output is this one.
    expected = assert_both_agree(probe, tmp_path / "probe", BYTES).read_bytes()
    data = probe.read_bytes()
    blob = data.index(struct.pack("<HH", 0x0011, 0x1101))  # CT_small has (0011,0010)
    head = 8 if implicit else 12
    before, after = data[:blob + head - 4], data[blob + head + 1000:]
    sequence = data.index(struct.pack("<HH", 0x0040, 0x0260))
    delimiter = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    end = data.index(delimiter, data.index(delimiter, sequence) + 8) + 8  # the outer one's
    # Every even offset (all lengths are even) from the tag of the element before the
    # sequence to the tag of the one after it.
    for at in range(sequence - 12, end + 10, 2):
        size = 1000 + FIRST_READ - at
        source = tmp_path / f"{at}.dcm"
        source.write_bytes(before + struct.pack("<I", size) + b"\x5a" * size + after)
        header = read_source(str(source), CONTEXTS["all-options"])
        assert header.route == BYTES
        out, _ = write_deidentified(str(source), tmp_path / str(at), CONTEXTS["all-options"],
                                    consent=YES, header=header)
        assert out.read_bytes() == expected, at


def with_private_information(size: int) -> pydicom.FileDataset:
    """CT_small whose file meta carries ``size`` bytes of Private Information (0002,0102)."""
    ds = ct_dataset()
    ds.file_meta.PrivateInformationCreatorUID = "2.25.1234"
    ds.file_meta.PrivateInformation = b"\x5a" * size
    return ds


def test_a_file_meta_larger_than_the_first_read_is_walked_wherever_the_read_ends(tmp_path):
    from datasets.deid_bytes import FIRST_READ

    probe = saved(with_private_information(1000), tmp_path / "probe.dcm").read_bytes()
    information = probe.index(struct.pack("<HH", 0x0002, 0x0102))
    body = information + 12 + 1000
    # The read ends in the Private Information's header, in its value, in the first
    # element of the dataset, and just after it.
    for at in [*range(information + 2, information + 14, 2), body - 4,
               *range(body, body + 14, 2)]:
        size = 1000 + FIRST_READ - at
        source = saved(with_private_information(size), tmp_path / f"{at}.dcm")
        out = assert_both_agree(source, tmp_path / str(at), BYTES)
        assert "PrivateInformation" not in pydicom.dcmread(out).file_meta


# What the export's safety check reads from the walk: Burned In Annotation.

@pytest.mark.parametrize("implicit", [False, True])
def test_the_walk_reads_burned_in_annotation_for_the_safety_check(implicit, tmp_path):
    ds = ct_dataset()
    ds.BurnedInAnnotation = "yes"
    header = read_source(str(saved(ds, tmp_path / "in.dcm", implicit=implicit)),
                         CONTEXTS["all-options"])
    assert header.route == BYTES and header.burned_in == "YES"


# Files the walk hands to the pydicom path: valid, but not for the walk. Each goes out as
# the pydicom path writes it, with what the walk could not vouch for removed.

def inserted(data: bytes, element: bytes) -> bytes:
    """``element`` (encoded explicit VR little endian) inserted among the top-level
    elements of ``data`` where its tag belongs."""
    group, number = struct.unpack_from("<HH", element)
    after = next(int(e.tag) for e in pydicom.dcmread(io.BytesIO(data))
                 if e.tag > (group << 16 | number))
    at = element_at(data, after)
    return data[:at] + element + data[at:]


def test_command_elements_left_in_a_file_are_dropped(tmp_path):
    # A relay that stored the C-STORE command with the dataset: (0000,xxxx) first.
    data = ct_small()
    command = struct.pack("<HH2sH", 0x0000, 0x0002, b"UI", 26) + b"1.2.840.10008.5.1.4.1.1.2\x00"
    source = tmp_path / "in.dcm"
    source.write_bytes(inserted(data, command))
    out = pydicom.dcmread(assert_both_agree(source, tmp_path, PYDICOM))
    assert not [e for e in out if e.tag.group == 0]
    assert out.PixelData == ct_dataset().PixelData


def test_a_body_encoded_otherwise_than_its_meta_says_goes_out_as_its_meta_says(tmp_path):
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = ct_dataset()
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta)  # says Explicit VR Little Endian
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, True
    write_dataset(body, ds)
    source = tmp_path / "in.dcm"
    source.write_bytes(b"\x00" * 128 + b"DICM" + meta.getvalue() + body.getvalue())
    out = pydicom.dcmread(assert_both_agree(source, tmp_path, PYDICOM))
    assert out.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert out.PixelData == ds.PixelData and out.PatientName != ds.PatientName


@pytest.mark.parametrize("implicit", [False, True])
def test_a_stray_item_tag_at_the_top_level_is_dropped(implicit, tmp_path):
    # fo-dicom's GH364.dcm: an empty item tag among the top-level elements.
    data = saved(ct_dataset(), tmp_path / "clean.dcm", implicit=implicit).read_bytes()
    at = data.index(struct.pack("<HH", 0x7FE0, 0x0010))
    source = tmp_path / "in.dcm"
    source.write_bytes(data[:at] + b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + data[at:])
    out = pydicom.dcmread(assert_both_agree(source, tmp_path, PYDICOM))
    assert 0xFFFEE000 not in out and out.PixelData == ct_dataset().PixelData


def test_a_digital_signature_after_the_pixels_is_removed(tmp_path):
    ds = ct_dataset()
    signature = pydicom.Dataset()
    signature.DigitalSignatureUID = "2.25.99"
    signature.Signature = b"\x01" * 16
    ds.DigitalSignaturesSequence = pydicom.Sequence([signature])  # (FFFA,FFFA)
    source = saved(ds, tmp_path / "in.dcm")
    out = pydicom.dcmread(assert_both_agree(source, tmp_path, PYDICOM))
    assert "DigitalSignaturesSequence" not in out and out.PixelData == ds.PixelData


def test_a_file_meta_written_in_implicit_vr_is_read_as_pydicom_reads_it(tmp_path):
    data = ct_small()
    meta = pydicom.dcmread(CORPUS / "CT_small.dcm").file_meta
    body_at = 132 + 12 + struct.unpack_from("<I", data, 140)[0]
    out = io.BytesIO()
    for element in meta:
        if element.tag == 0x00020000:
            continue
        value = element.value if isinstance(element.value, bytes) else \
            element.value.encode() + (b"\x00" if len(element.value) % 2 else b"")
        out.write(struct.pack("<HHI", 2, element.tag.element, len(value)) + value)
    source = tmp_path / "in.dcm"
    source.write_bytes(data[:132] + out.getvalue() + data[body_at:])
    out_path = assert_both_agree(source, tmp_path, PYDICOM)
    assert pydicom.dcmread(out_path).PixelData == ct_dataset().PixelData


def test_a_sequence_stored_as_un_with_items_of_undefined_length_is_de_identified(tmp_path):
    # UN sequence content is implicit VR, here in items of undefined length: the explicit
    # walk cannot read it, pydicom can.
    item = pydicom.Dataset()
    item.PersonName = "Quillfeather^Ottoline"
    body = io.BytesIO()
    pydicom.filewriter.write_dataset(
        _implicit_buffer(body), item)
    content = (b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + body.getvalue()
               + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    element = struct.pack("<HH2sHI", 0x0040, 0x0260, b"UN", 0, 0xFFFFFFFF) + content
    source = tmp_path / "in.dcm"
    source.write_bytes(inserted(ct_small(), element))
    assert b"Quillfeather" in source.read_bytes()
    out = assert_both_agree(source, tmp_path, PYDICOM)
    assert b"Quillfeather" not in out.read_bytes()


def _implicit_buffer(buffer: io.BytesIO):
    from pydicom.filebase import DicomFileLike

    fp = DicomFileLike(buffer)
    fp.is_little_endian, fp.is_implicit_VR = True, True
    return fp


# Broken structure found by the walk: refused with its reason, nothing written.

def test_a_file_cut_inside_an_elements_tag_is_refused(tmp_path):
    data = ct_small()
    refused(tmp_path, data[:element_at(data, 0x00100010) + 4], "into an element's tag")


def test_a_file_cut_inside_its_file_meta_is_refused(tmp_path):
    # 144: (0002,0001), OB; its four-byte length is cut.
    refused(tmp_path, ct_small()[:154], "ends inside its file meta")


def test_a_file_with_file_meta_and_no_dataset_is_refused(tmp_path):
    data = ct_small()
    refused(tmp_path, data[:144 + struct.unpack_from("<I", data, 140)[0]],
            "ends inside its file meta")


def test_elements_out_of_order_are_refused(tmp_path):
    # Study Date (0008,0020) moved after Patient's Name: a writer's bug or a wrong length,
    # and a wrong length could hide an identifier inside a kept value.
    data = ct_small()
    start = element_at(data, 0x00080020)
    end = start + 8 + struct.unpack_from("<H", data, start + 6)[0]
    moved = data[:start] + data[end:]
    name = element_at(moved, 0x00100010)
    refused(tmp_path, moved[:name] + data[start:end] + moved[name:], "out of order")


def test_a_sequence_with_something_else_where_an_item_should_be_is_refused(tmp_path):
    ds = with_blob_and_protocol(2)
    data = bytearray(saved(ds, tmp_path / "clean.dcm").read_bytes())
    item = data.index(b"\xfe\xff\x00\xe0", element_at(data, 0x00400260))
    data[item:item + 4] = struct.pack("<HH", 0x0008, 0x0100)
    refused(tmp_path, bytes(data), "where a sequence item should be")


# The writer's own paths.

def test_a_stamp_left_by_another_de_identifier_with_another_vr_is_overwritten(tmp_path):
    # (0012,0063) De-identification Method is LO; another tool wrote it as LT.
    data = ct_small()
    text = b"OTHER TOOL v2"
    text += b" " * (len(text) % 2)
    element = struct.pack("<HH2sH", 0x0012, 0x0063, b"LT", len(text)) + text
    source = tmp_path / "in.dcm"
    source.write_bytes(inserted(data, element))
    out = pydicom.dcmread(assert_both_agree(source, tmp_path, BYTES))
    assert out.DeidentificationMethod.startswith("Consentry")
    assert out.PatientIdentityRemoved == "YES"


def test_a_file_with_nothing_kept_as_it_was_is_written_whole_from_its_decoded_part(
        tmp_path):
    """Every element is one the profile changes or deidentify reads: no source range is
    copied, and the file still carries all of them."""
    ct = ct_dataset()
    ds = pydicom.Dataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyDate", "PatientName",
                    "PatientID", "StudyInstanceUID", "SeriesInstanceUID"):
        setattr(ds, keyword, ct.get(keyword))
    ds.file_meta = ct.file_meta
    source = saved(ds, tmp_path / "in.dcm")
    header = read_source(str(source), CONTEXTS["all-options"])
    from datasets.deid import COPY

    assert not [e for e in header.elements if e[3] == COPY]
    out = pydicom.dcmread(assert_both_agree(source, tmp_path, BYTES))
    assert out.StudyInstanceUID != ct.StudyInstanceUID and out.PatientID.startswith("ANON-")


def test_many_exports_in_one_worker_each_get_their_own_stamp_and_private_whitelist(
        tmp_path):
    """A worker serving exports one after another keeps a bounded memory of each export's
    rules and stamp, and every file still gets its own export's."""
    from itertools import combinations

    from datasets.deid_bytes import _FATE_TABLES, _STAMPS

    explicit = saved(ct_dataset(), tmp_path / "explicit.dcm")
    implicit = saved(ct_dataset(), tmp_path / "implicit.dcm", implicit=True)
    private = [int(e.tag) for e in ct_dataset() if e.tag.is_private]
    subsets = [frozenset(c) for n in range(5) for c in combinations(Option.ALL, n)]
    runs = 0
    for flag in ("YES", "NO", "WITHDRAWN"):
        for options in subsets:
            for source in (explicit, implicit):
                kept = private[runs % len(private)]
                context = DeidContext(secret=b"dataset-1", options=options,
                                      private_whitelist=frozenset({kept}))
                out, _ = write_deidentified(str(source), tmp_path / str(runs), context,
                                            consent=ConsentStamp(flag))
                ds = pydicom.dcmread(out)
                assert ds[0x00120085].value == flag
                assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence][1:] == \
                    [Option.CODES[o][0] for o in Option.ALL if o in options]
                assert [int(e.tag) for e in ds if e.tag.is_private] == [kept] or \
                    kept & 0xFF00 == 0  # a creator alone
                runs += 1
    assert runs > 64
    assert len(_STAMPS) <= 65 and len(_FATE_TABLES) <= 65


def test_a_file_meta_element_of_undefined_length_is_read_as_pydicom_reads_it(tmp_path):
    data = ct_small()
    (length,) = struct.unpack_from("<I", data, 140)
    body = 144 + length
    information = (struct.pack("<HH2sHI", 2, 0x0102, b"OB", 0, 0xFFFFFFFF) + b"\x5a" * 8
                   + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    source = tmp_path / "in.dcm"
    source.write_bytes(data[:140] + struct.pack("<I", length + len(information))
                       + data[144:body] + information + data[body:])
    out = pydicom.dcmread(assert_both_agree(source, tmp_path, PYDICOM))
    assert "PrivateInformation" not in out.file_meta
    assert out.PixelData == ct_dataset().PixelData


def test_what_deidentify_writes_is_always_decoded_so_never_also_copied():
    """The writer merges copied source ranges with what deidentify encoded, by tag; it
    relies on every tag deidentify writes (the stamp, the pseudonym) being one that
    element_fate decodes, so no tag is written twice."""
    from datasets.deid import DECODE, HEADER_TAGS, STAMP_TAGS, element_fate, stamp

    written = pydicom.Dataset()
    for options in (frozenset(), frozenset(Option.ALL)):
        stamp(written, DeidContext(secret=b"s", options=options), ConsentStamp("NO"))
    written.PatientID = written.PatientName = "ANON"
    assert set(written.keys()) == STAMP_TAGS | {0x00100010, 0x00100020}
    for tag in set(written.keys()) | HEADER_TAGS:
        for vr in (None, dictionary_vr(tag)):
            assert element_fate(tag, vr, False, frozenset(Option.ALL),
                                frozenset()) == DECODE


def with_every_kind_of_element() -> pydicom.FileDataset:
    """CT_small with one element of each kind ``element_fate`` decides by tag and VR alone:
    a stale group length, an overlay in group 6002 and a curve, sequences of defined length
    (as pydicom writes them) the table is silent on, with a person and a private element
    inside, a sequence the table keeps stored as UN with a defined length, a public element nobody
    knows, and a name, a date and a UID the table does not list."""
    from tests.datasets.test_deid_real_world import implicit_item, person, raw

    ds = ct_dataset()
    ds.add_new(0x00080000, "UL", 1234)  # (0008,0000) group length, stale once edited
    ds.add_new(0x60020010, "US", 2)  # Overlay Rows, group 6002
    ds.add_new(0x60020011, "US", 2)
    ds.add_new(0x60023000, "OW", b"\x0f\x00")
    ds.add_new(0x50000005, "US", 1)  # Curve Dimensions, group 5000
    ds.add_new(0x50003000, "OW", b"\x01\x00")
    inside = person()
    inside.private_block(0x0009, "ACME", create=True).add_new(0x01, "LO", "ACME-PRIVATE")
    ds.ReferencedSeriesSequence = pydicom.Sequence([inside])  # the table is silent
    # UDI Sequence, kept under Retain Device Identity, from a system that did not know it.
    raw(ds, 0x0018100A, "UN", implicit_item(person()))
    ds.add_new(0x00081234, "UN", b"Quillfeather^Ottoline ")  # not in the dictionary
    ds.SecondaryReviewerName = "Quillfeather^Ottoline"  # (0014,0104)
    ds.DateOfGainCalibration = "19611115"  # (0014,3076)
    ds.MultiFrameSourceSOPInstanceUID = ds.SOPInstanceUID + ".9"  # (0008,1167)
    return ds


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("implicit", [False, True])
def test_what_the_walk_copies_or_drops_by_tag_alone_is_what_the_pydicom_path_writes(
        implicit, context, tmp_path):
    source = saved(with_every_kind_of_element(), tmp_path / "in.dcm", implicit=implicit)
    data = source.read_bytes()
    assert b"Quillfeather" in data and b"ACME-PRIVATE" in data
    out = assert_both_agree(source, tmp_path, BYTES, CONTEXTS[context]).read_bytes()
    assert b"Quillfeather" not in out and b"ACME-PRIVATE" not in out and b"19611115" not in out
    written = pydicom.dcmread(io.BytesIO(out))
    assert not [e.tag for e in written if e.tag.element == 0 or e.tag.group >> 8 in (0x50,
                                                                                    0x60)]
