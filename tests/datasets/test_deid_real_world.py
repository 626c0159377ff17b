"""De-identification of files as other software writes them. Each case was found running
the profile over public test data of other DICOM packages (fo-dicom, dcm4che, pydicom-data,
GDCM, dicomParser, scanner output); each file here is rebuilt from pydicom's own test files,
so nothing is fetched at test time."""

import copy
import io

import pydicom
import pydicom.encaps
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.tag import Tag

from datasets.deid import ConsentStamp, DeidContext, Option, deidentify
from tests.conftest import CORPUS

ALL_OPTIONS = frozenset(Option.ALL)


def ct() -> pydicom.FileDataset:
    return pydicom.dcmread(CORPUS / "CT_small.dcm")


def written(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def reread(ds: Dataset) -> pydicom.FileDataset:
    """Through bytes, so every element is a raw one again, as an export reads a file."""
    return pydicom.dcmread(io.BytesIO(written(ds)))


def exported(ds: Dataset, options: frozenset[str] = frozenset()) -> bytes:
    out = deidentify(ds, DeidContext(secret=b"dataset-1", options=options),
                     consent=ConsentStamp("YES"))
    return written(out)


def raw(ds: Dataset, tag: int, vr: str | None, value: bytes) -> None:
    ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def implicit_item(item: Dataset) -> bytes:
    """One sequence item encoded implicit VR little endian, as UN sequence content is."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, item)
    body = buffer.getvalue()
    return b"\xfe\xff\x00\xe0" + len(body).to_bytes(4, "little") + body


def person() -> Dataset:
    item = Dataset()
    item.PersonName = "Quillfeather^Ottoline"
    item.PatientID = "MRN-QX731"
    return item


# fo-dicom's test data: sequences a relaying system did not know arrive as UN; pydicom
# reads them as sequences by the dictionary, and the profile must go into them.
UN_SEQUENCES = [
    0x00400260,  # Performed Protocol Code Sequence: the table is silent
    0x00189346,  # CTDI Phantom Type Code Sequence: the table is silent
    0x00081115,  # Referenced Series Sequence: the table keeps its items
]


@pytest.mark.parametrize("tag", UN_SEQUENCES)
@pytest.mark.parametrize("options", [frozenset(), ALL_OPTIONS])
def test_a_sequence_stored_as_un_is_de_identified_inside(tag, options):
    source = ct()
    raw(source, tag, "UN", implicit_item(person()))
    ds = reread(source)
    assert b"Quillfeather" in written(ds)
    data = exported(ds, options)
    assert b"Quillfeather" not in data
    assert b"MRN-QX731" not in data


def test_a_public_element_nobody_knows_is_removed():
    """A public tag missing from the dictionary, stored as UN: unreadable, so not passed on
    (it could be anything, a name included)."""
    source = ct()
    assert not pydicom.datadict.dictionary_has_tag(0x00081234)
    raw(source, 0x00081234, "UN", b"Quillfeather^Ottoline ")
    ds = reread(source)
    assert b"Quillfeather" in written(ds)
    assert b"Quillfeather" not in exported(ds)


# fo-dicom GH364.dcm and DIRW0007: a stray item tag (FFFE,E000) and sequence delimiter
# (FFFE,E0DD) among the top-level elements. Registration accepts both files; the export's
# pydicom write failed on them (TypeError: encoding without a string argument).
@pytest.mark.parametrize("tag", [0xFFFEE000, 0xFFFEE0DD])
def test_stray_item_and_delimiter_tags_do_not_break_the_export(tag):
    source = ct()
    raw(source, tag, None, b"")
    ds = pydicom.dcmread(io.BytesIO(_with_stray_tag(written(ct()), tag)))
    assert Tag(tag) in ds
    out = pydicom.dcmread(io.BytesIO(exported(ds)))
    assert Tag(tag) not in out
    assert out.PatientIdentityRemoved == "YES"


def _with_stray_tag(data: bytes, tag: int) -> bytes:
    """The file with an empty item tag (as fo-dicom's GH364.dcm has) inserted before its
    pixel data."""
    at = data.rindex(b"\xe0\x7f\x10\x00")
    stray = (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little")
    return data[:at] + stray + b"\x00\x00\x00\x00" + data[at:]


def test_file_meta_elements_inside_the_dataset_do_not_break_the_export():
    source = ct()
    uid = source.SOPInstanceUID.encode() + b"\x00" * (len(source.SOPInstanceUID) % 2)
    raw(source, 0x00020003, "UI", uid)
    data = exported(source)
    assert uid.rstrip(b"\x00") not in data


# dcm4che's Tag-0040-A170-VR-CS.dcm keeps Findings Group UID (Trial) (0040,A021), a retired
# UID the table does not list: it went out unchanged. Any UID the table is silent on names
# an instance, unless it names a class, a syntax or a terminology.
def test_uids_the_table_does_not_list_are_remapped():
    ds = ct()
    original = ds.SOPInstanceUID
    ds.add_new(0x0040A021, "UI", original + ".7")  # Findings Group UID (Trial)
    frame = Dataset()
    frame.SOPInstanceUIDOfConcatenationSource = original + ".8"
    frame.ReferencedSOPClassUID = ds.SOPClassUID
    ds.ReferencedInstanceSequence = pydicom.Sequence([frame])
    out = pydicom.dcmread(io.BytesIO(exported(ds)))
    assert out[0x0040A021].value != original + ".7"
    assert out[0x0040A021].value.startswith("2.25.")
    item = out.ReferencedInstanceSequence[0]
    assert item.SOPInstanceUIDOfConcatenationSource.startswith("2.25.")
    assert item.ReferencedSOPClassUID == ds.SOPClassUID  # a class names nobody


def test_names_and_dates_the_table_does_not_list_are_replaced():
    ds = ct()
    ds.SecondaryReviewerName = "Quillfeather^Ottoline"  # (0014,0104): silent
    ds.DateOfGainCalibration = "19610715"  # (0014,3076): silent
    basic = exported(copy.deepcopy(ds))
    assert b"Quillfeather" not in basic and b"19610715" not in basic
    shifted = pydicom.dcmread(io.BytesIO(exported(ds, ALL_OPTIONS)))
    assert shifted.DateOfGainCalibration not in ("", "19610715")  # shifted, not removed


def test_a_file_without_sop_class_uid_in_its_dataset_is_exported_with_the_metas():
    ds = ct()
    del ds.SOPClassUID
    out = pydicom.dcmread(io.BytesIO(exported(reread(ds))))
    assert out.file_meta.MediaStorageSOPClassUID == ct().SOPClassUID


@pytest.mark.parametrize(("implicit", "syntax"), [
    (False, pydicom.uid.ExplicitVRLittleEndian), (True, pydicom.uid.ImplicitVRLittleEndian)])
def test_a_file_without_transfer_syntax_in_its_meta_is_exported_as_it_was_read(implicit,
                                                                                syntax):
    ds = ct()
    del ds.file_meta.TransferSyntaxUID
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=implicit, little_endian=True)
    read = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    assert "TransferSyntaxUID" not in read.file_meta
    data = exported(read)
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.file_meta.TransferSyntaxUID == syntax
    # The body is encoded as the meta says: the first element after the meta has an
    # explicit VR ("CS" of Specific Character Set) or none.
    body = data.index(b"\x08\x00\x05\x00")
    assert (data[body + 4:body + 6] == b"CS") is not implicit
    assert out.PixelData == ds.PixelData


# pydicom-data's liver_deflate.dcm: Deflated Image Frame Compression (2024), which pydicom
# 3.0 reads but refused to write ("not a valid transfer syntax"), so its export failed.
@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.8.1", "1.2.840.10008.1.2.4.110"])
def test_a_newer_standard_transfer_syntax_is_written_again(syntax):
    ds = ct()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = pydicom.encaps.encapsulate([ds.PixelData])  # stands for the frames
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    read = pydicom.dcmread(io.BytesIO(buffer.getvalue()), stop_before_pixels=True)
    out = pydicom.dcmread(io.BytesIO(exported(read)), stop_before_pixels=True)
    assert out.file_meta.TransferSyntaxUID == syntax


# pydicom's own character set files: with Clean Descriptors, a description that names the
# patient kept the one-character components of Chinese and Korean names (王, 洪, 홍) and
# the name's delimiters ("Study of ^=王^").
CHARSETS = CORPUS.parent / "charset_files"


@pytest.mark.parametrize("name", ["chrX1.dcm", "chrX2.dcm", "chrI2.dcm", "chrH31.dcm",
                                  "chrArab.dcm", "chrGerm.dcm"])
def test_clean_descriptors_removes_the_name_in_any_character_set(name):
    ds = pydicom.dcmread(CHARSETS / name)
    person = str(ds.PatientName)
    ds.StudyDescription = f"Study of {person} x"
    ds.ImageComments = f"{person.replace('^', '')} comments"
    out = pydicom.dcmread(io.BytesIO(exported(ds, ALL_OPTIONS)))
    assert out.StudyDescription == "Study of x"
    assert out.ImageComments == "comments"


def test_identifiers_the_parsed_table_has_no_row_for_are_removed():
    """A birth date in another calendar is a birth date; the qualifiers of an issuer the
    table removes name the hospital. The parsed Table E.1-1 has no row for them."""
    ds = ct()
    ds.PatientBirthDateInAlternativeCalendar = "1340/04/23"
    ds.PatientAlternativeCalendar = "I"
    qualifiers = Dataset()
    qualifiers.UniversalEntityID = "urn:oid:1.2.3.4.5.617"
    qualifiers.UniversalEntityIDType = "ISO"
    ds.IssuerOfPatientIDQualifiersSequence = pydicom.Sequence([qualifiers])
    order = Dataset()
    order.LocalNamespaceEntityID = "QUILLFEATHER-CLINIC"
    ds.OrderPlacerIdentifierSequence = pydicom.Sequence([order])
    for options in (frozenset(), ALL_OPTIONS):
        data = exported(copy.deepcopy(ds), options)
        for value in (b"1340/04/23", b"1.2.3.4.5.617", b"QUILLFEATHER"):
            assert value not in data
        out = pydicom.dcmread(io.BytesIO(data))
        assert "PatientAlternativeCalendar" not in out


@pytest.mark.parametrize("tag", UN_SEQUENCES)
def test_the_byte_level_writer_enters_a_sequence_stored_as_un_too(tag, tmp_path):
    from datasets.deid_write import write_deidentified

    source = ct()
    raw(source, tag, "UN", implicit_item(person()))
    raw(source, 0x00081234, "UN", b"Quillfeather^Ottoline ")  # a tag nobody knows
    path = tmp_path / "in.dcm"
    path.write_bytes(written(reread(source)))
    assert b"Quillfeather" in path.read_bytes()
    out, _ = write_deidentified(str(path), tmp_path / "out",
                                DeidContext(secret=b"dataset-1", options=frozenset()),
                                consent=ConsentStamp("YES"))
    data = out.read_bytes()
    assert b"Quillfeather" not in data and b"MRN-QX731" not in data


def write_file(ds: Dataset, path, *, implicit: bool = False):
    """``ds`` saved as a file in explicit or implicit VR little endian."""
    ds.file_meta.TransferSyntaxUID = (pydicom.uid.ImplicitVRLittleEndian if implicit
                                      else pydicom.uid.ExplicitVRLittleEndian)
    ds.save_as(path, enforce_file_format=True)
    return path


def export_file(path, tmp_path, writer: str, options: frozenset[str] = frozenset(),
                whitelist: frozenset[int] = frozenset()) -> bytes:
    """The file as an export writes it, at byte level or by the pydicom path."""
    from datasets.deid_write import write_deidentified, write_deidentified_pydicom

    write = write_deidentified if writer == "bytes" else write_deidentified_pydicom
    context = DeidContext(secret=b"dataset-1", options=options, private_whitelist=whitelist)
    out, _ = write(str(path), tmp_path / writer, context, consent=ConsentStamp("YES"))
    return out.read_bytes()


HOT_IRON = "1.2.840.10008.1.5.1"  # the standard's Hot Iron color palette (PS3.6 A.5)


@pytest.mark.parametrize("writer", ["bytes", "pydicom"])
def test_uids_the_table_does_not_list_that_name_the_standards_own_things_are_kept(
        writer, tmp_path):
    """A reference to a standard color palette, or a list of SOP classes, names nobody:
    remapped, the recipient's viewer could no longer find the palette. An instance UID the
    table does not list is remapped all the same, at the top level too."""
    ds = ct()
    source = ds.SOPInstanceUID + ".9"
    ds.ReferencedColorPaletteInstanceUID = HOT_IRON  # (0028,0304): table silent
    ds.SelectorUIValue = [pydicom.uid.CTImageStorage, pydicom.uid.MRImageStorage]
    ds.MultiFrameSourceSOPInstanceUID = source  # (0008,1167): table silent
    data = export_file(write_file(ds, tmp_path / "in.dcm"), tmp_path, writer)
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.ReferencedColorPaletteInstanceUID == HOT_IRON
    assert list(out.SelectorUIValue) == [pydicom.uid.CTImageStorage,
                                         pydicom.uid.MRImageStorage]
    assert out.MultiFrameSourceSOPInstanceUID == DeidContext(
        secret=b"dataset-1").remap_uid(source)
    assert source.encode() not in data


@pytest.mark.parametrize("writer", ["bytes", "pydicom"])
def test_a_public_element_nobody_knows_in_an_implicit_vr_file_is_removed(writer, tmp_path):
    """Implicit VR: no VR in the file, none in the dictionary. Nobody can say what it holds
    (a name, here), so it does not go out; the rest of the file does."""
    ds = ct()
    assert not pydicom.datadict.dictionary_has_tag(0x00081234)
    ds.add_new(0x00081234, "UN", b"Quillfeather^Ottoline ")
    path = write_file(ds, tmp_path / "in.dcm", implicit=True)
    assert b"Quillfeather" in path.read_bytes()
    data = export_file(path, tmp_path, writer)
    assert b"Quillfeather" not in data
    out = pydicom.dcmread(io.BytesIO(data))
    assert 0x00081234 not in out and out.Rows == ds.Rows and out.PixelData == ds.PixelData


@pytest.mark.parametrize("implicit", [False, True])
def test_a_whitelisted_private_sequence_goes_out_as_it_came(implicit, tmp_path):
    """A private sequence of undefined length that the dataset whitelists is copied as it
    was read, items and lengths alone, by both writers alike."""
    ds = ct()
    block = ds.private_block(0x0029, "ACME 1.0", create=True)
    item = Dataset()
    item.add_new(block.get_tag(0x20), "LO", "scanner 7")
    item.is_undefined_length_sequence_item = True
    block.add_new(0x10, "SQ", [item])
    ds[block.get_tag(0x10)].is_undefined_length = True
    path = write_file(ds, tmp_path / "in.dcm", implicit=implicit)
    whitelist = frozenset({0x00290000 | (block.block_start >> 8), block.get_tag(0x10),
                           block.get_tag(0x20)})
    ours = export_file(path, tmp_path, "bytes", whitelist=whitelist)
    assert ours == export_file(path, tmp_path, "pydicom", whitelist=whitelist)
    kept = pydicom.dcmread(io.BytesIO(ours))[block.get_tag(0x10)]
    assert kept.is_undefined_length and len(kept.value) == 1
    assert block.get_tag(0x20) in kept.value[0] and b"scanner 7" in ours
