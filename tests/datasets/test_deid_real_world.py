"""De-identification of files as other software writes them. Each case was found running
the profile over public test data of other DICOM packages (fo-dicom, dcm4che, pydicom-data,
GDCM, dicomParser, scanner output); each file here is rebuilt from pydicom's own test files,
so nothing is fetched at test time."""

import copy
import io
from datetime import date, timedelta

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


# What a recipient reads in each exported file, checked value by value (issue 18: mutation
# testing found each of these unchecked).

def test_the_file_meta_names_the_datasets_own_class_and_its_new_instance():
    """A writer whose meta names another SOP class than its dataset: the export's meta names
    the dataset's, and the instance the recipient's archive files it under is the new one."""
    ds = ct()
    ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.MRImageStorage
    out = pydicom.dcmread(io.BytesIO(exported(reread(ds))))
    assert out.file_meta.MediaStorageSOPClassUID == pydicom.uid.CTImageStorage
    new = DeidContext(secret=b"dataset-1").remap_uid(ct().SOPInstanceUID)
    assert out.SOPInstanceUID == new
    assert out.file_meta.MediaStorageSOPInstanceUID == new


def test_a_big_endian_file_without_transfer_syntax_in_its_meta_is_exported_as_read():
    ds = pydicom.dcmread(CORPUS / "MR_small_bigendian.dcm")
    del ds.file_meta.TransferSyntaxUID
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=False)
    read = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    assert "TransferSyntaxUID" not in read.file_meta
    out = pydicom.dcmread(io.BytesIO(exported(read)))
    assert out.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRBigEndian
    assert out.pixel_array.tolist() == pydicom.dcmread(
        CORPUS / "MR_small_bigendian.dcm").pixel_array.tolist()


def test_a_date_the_table_does_not_list_is_replaced_or_moved_by_the_patients_own_offset():
    """Without the dates option the dummy date; with it, the patient's one shift, the time
    of a date-time kept. November: a month of two digits, both read."""
    ds = ct()
    ds.DateOfGainCalibration = "19611115"  # (0014,3076) DA: the table is silent
    ds.ItemInventoryDateTime = "19611115103000"  # (0008,0404) DT: the table is silent
    basic = pydicom.dcmread(io.BytesIO(exported(copy.deepcopy(ds))))
    assert basic.DateOfGainCalibration == "19000101"
    assert basic.ItemInventoryDateTime == "19000101000000"
    days = DeidContext(secret=b"dataset-1").offset_for(str(ds.get("IssuerOfPatientID", "")),
                                                        str(ds.PatientID))
    moved = (date(1961, 11, 15) + timedelta(days=days)).strftime("%Y%m%d")
    shifted = pydicom.dcmread(io.BytesIO(exported(ds, ALL_OPTIONS)))
    assert shifted.DateOfGainCalibration == moved
    assert shifted.ItemInventoryDateTime == moved + "103000"


def test_a_date_nobody_can_read_is_emptied_when_dates_are_moved():
    ds = ct()
    ds.StudyDate = "2025"  # a year alone: no day to move
    out = pydicom.dcmread(io.BytesIO(exported(reread(ds), ALL_OPTIONS)))
    assert out.StudyDate == ""


def test_a_coding_schemes_uid_is_kept_inside_a_sequence_the_table_does_not_list():
    """SNOMED's UID names a terminology: remapped, the recipient could not look codes up."""
    ds = ct()
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "77477000", "SCT", "CT"
    item.CodingSchemeUID = "2.16.840.1.113883.6.96"
    ds.PerformedProtocolCodeSequence = pydicom.Sequence([item])
    out = pydicom.dcmread(io.BytesIO(exported(ds)))
    assert out.PerformedProtocolCodeSequence[0].CodingSchemeUID == "2.16.840.1.113883.6.96"


def test_a_name_written_as_a_person_name_is_replaced_whatever_the_dictionary_says():
    """(0008,0104) Code Meaning is LO in the dictionary and the table is silent on it; a
    writer that stored it as PN with a person in it: judged by the VR it was written with."""
    ds = ct()
    raw(ds, 0x00080104, "PN", b"Quillfeather^Ottoline ")
    data = exported(reread(ds))
    assert b"Quillfeather" not in data
    assert pydicom.dcmread(io.BytesIO(data))[0x00080104].value == "ANONYMOUS"


def test_a_binary_attribute_the_profile_replaces_goes_out_empty():
    """Source Identifier (0034,0005), OB: D, and there is no dummy for bytes."""
    ds = ct()
    ds.add_new(0x00340005, "OB", b"SCANNER-7 ROOM 3")
    data = exported(reread(ds))
    assert b"SCANNER-7" not in data
    assert pydicom.dcmread(io.BytesIO(data))[0x00340005].value in (b"", None)


def test_an_empty_uid_stays_empty():
    ds = ct()
    ds.FrameOfReferenceUID = ""  # U: nothing to remap, and nothing is made up
    out = pydicom.dcmread(io.BytesIO(exported(reread(ds))))
    assert out.FrameOfReferenceUID == ""


@pytest.mark.parametrize(("keyword", "vr"), [("ROIDescription", "ST"),
                                             ("ReasonForVisit", "UT")])
def test_clean_descriptors_cleans_long_texts_and_keeps_their_words(keyword, vr):
    ds = ct()
    setattr(ds, keyword, "Tumour left lung, DOB 15/07/1961")
    assert vr == ds[keyword].VR
    out = pydicom.dcmread(io.BytesIO(exported(reread(ds), ALL_OPTIONS)))
    assert out[keyword].value == "Tumour left lung"


@pytest.mark.parametrize("issuer", ["HOSPITAL-A", None])
@pytest.mark.parametrize("patient_id", ["MRN-QX731", None])
def test_the_files_pseudonym_is_the_one_the_registry_keeps_for_the_patient(issuer,
                                                                            patient_id):
    """The registry keeps each patient's pseudonym (``context.pseudonym`` of the patient's
    issuer and id, ``exports.py``), the steward's only way back: the file must carry the
    same one, and its dates the same patient's shift; an absent issuer or id is empty."""
    ds = ct()
    del ds.PatientID
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    if patient_id is not None:
        ds.PatientID = patient_id
    context = DeidContext(secret=b"dataset-1", options=ALL_OPTIONS)
    out = pydicom.dcmread(io.BytesIO(exported(reread(ds), ALL_OPTIONS)))
    assert out.PatientID == context.pseudonym(issuer or "", patient_id or "")
    days = context.offset_for(issuer or "", patient_id or "")
    assert out.StudyDate == (date(2004, 1, 19) + timedelta(days=days)).strftime("%Y%m%d")


def test_one_id_from_two_issuers_is_two_patients():
    """Hospitals number their patients independently: the same MRN from two issuers is two
    people, with two pseudonyms and two date shifts."""
    outs = []
    for issuer in ("HOSPITAL-A", "HOSPITAL-B"):
        ds = ct()
        ds.IssuerOfPatientID = issuer
        outs.append(pydicom.dcmread(io.BytesIO(exported(reread(ds), ALL_OPTIONS))))
    assert outs[0].PatientID != outs[1].PatientID
    assert outs[0].StudyDate != outs[1].StudyDate


def test_a_referenced_study_keeps_its_item_with_the_study_remapped():
    """Referenced Study Sequence: the profile's X/Z would empty it (Z, conservatively); its
    items are references, kept with their UIDs remapped like every other reference."""
    ds = ct()
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management
    item.ReferencedSOPInstanceUID = ds.StudyInstanceUID
    ds.ReferencedStudySequence = pydicom.Sequence([item])
    out = pydicom.dcmread(io.BytesIO(exported(reread(ds))))
    (kept,) = out.ReferencedStudySequence
    assert kept.ReferencedSOPClassUID == "1.2.840.10008.3.1.2.3.1"
    assert kept.ReferencedSOPInstanceUID == out.StudyInstanceUID


def test_a_value_the_profile_would_replace_but_nobody_can_read_goes():
    """Selector UN Value (0072,006D): the table says D, the value is UN by definition:
    unreadable, it cannot be vouched for, so it is removed rather than emptied."""
    ds = ct()
    ds.add_new(0x0072006D, "UN", b"Quillfeather^Ottoline ")
    data = exported(reread(ds))
    assert b"Quillfeather" not in data
    assert 0x0072006D not in pydicom.dcmread(io.BytesIO(data))


@pytest.mark.parametrize(("name", "written", "kept"), [
    # A two-letter family name is a name; an initial alone is a letter of every other word.
    ("Ng^J", "Ng jaw follow-up", "jaw follow-up"),
    # No name at all: nothing of the text is taken for one.
    (None, "Referred by XXXX, none urgent", "Referred by XXXX, none urgent"),
])
def test_clean_descriptors_removes_the_name_and_nothing_else(name, written, kept):
    ds = ct()
    del ds.PatientName
    if name is not None:
        ds.PatientName = name
    ds.StudyDescription = written
    out = pydicom.dcmread(io.BytesIO(exported(reread(ds), ALL_OPTIONS)))
    assert out.StudyDescription == kept


def test_clean_descriptors_removes_the_patients_other_ids_and_institution():
    """Not only the name: each of several other ids (the longest first, so that one id
    inside another leaves nothing behind), a two-letter study id, and the institution,
    wherever the free text names them without a label."""
    ds = ct()
    ds.OtherPatientIDs = ["ZB448", "AZB448"]
    ds.StudyID = "QZ"
    ds.InstitutionName = "St Elsewhere"
    ds.StudyDescription = "knee AZB448, St Elsewhere QZ"
    out = pydicom.dcmread(io.BytesIO(exported(reread(ds), ALL_OPTIONS)))
    assert out.StudyDescription == "knee"


def test_a_referenced_procedure_step_keeps_its_item_with_its_purpose_coded():
    """Referenced Performed Procedure Step Sequence: the profile's X/Z/D would replace its
    content (D); its items are references, kept like every other reference's, with the
    instance remapped and the coded purpose of the reference as written."""
    ds = ct()
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator = "121322", "DCM"
    purpose.CodeMeaning = "Source image for image processing operation"
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"  # Modality PPS
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID + ".5"
    item.PurposeOfReferenceCodeSequence = pydicom.Sequence([purpose])
    ds.ReferencedPerformedProcedureStepSequence = pydicom.Sequence([item])
    out = pydicom.dcmread(io.BytesIO(exported(reread(ds))))
    (kept,) = out.ReferencedPerformedProcedureStepSequence
    assert kept.ReferencedSOPInstanceUID == DeidContext(secret=b"dataset-1").remap_uid(
        ds.SOPInstanceUID + ".5")
    (code,) = kept.PurposeOfReferenceCodeSequence
    assert (code.CodeValue, code.CodeMeaning) == (
        "121322", "Source image for image processing operation")
