"""De-identification, checked from the outside: a PHI scan of every output byte that does
not use deid.py's own lists, pixel data untouched, and dicognito as an oracle."""

import copy
import re
from datetime import date
from io import BytesIO
from pathlib import Path

import pydicom
import pytest

from datasets.deid import ConsentStamp, DeidContext, Option, deidentify
from registry.demo import RECIPES, SyntheticPatient, write_study

CORPUS = Path(pydicom.__file__).parent / "data" / "test_files"
RAW = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm",
       "examples_overlay.dcm", "JPEG2000.dcm", "rtdose.dcm"]
ALL_OPTIONS = frozenset(Option.ALL)


def run(ds, *, secret=b"dataset-1", options=ALL_OPTIONS, flag="YES"):
    out = deidentify(copy.deepcopy(ds), DeidContext(secret=secret, options=options),
                     consent=ConsentStamp(flag))
    buffer = BytesIO()
    out.save_as(buffer, enforce_file_format=True)
    return out, buffer.getvalue()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Studies made from pydicom's files with made-up patients, institution, accession."""
    out = tmp_path_factory.mktemp("synthetic")
    people = [SyntheticPatient("MRN-QX731", "Quillfeather^Ottoline", date(1961, 7, 14), "F"),
              SyntheticPatient("MRN-ZB448", "Brackenbury^Lysander", date(1948, 2, 3), "M")]
    files = []
    for n, person in enumerate(people):
        for recipe in RECIPES[:3]:
            files += write_study(out_dir=out, patient=person, recipe=recipe,
                                 study_date=date(2025, 1 + n, 9), accession=f"ACC-{n}77{n}")
    return [pydicom.dcmread(f) for f in files]


def identifiers(ds) -> set[str]:
    """The issue's list, found by walking the original independently of deid.py: patient
    name, id, birth date, accession number, institution, every original UID, study dates."""
    found = set()
    for keyword in ("PatientName", "OtherPatientNames"):
        if ds.get(keyword):
            found.update(p for p in str(ds.get(keyword)).replace("=", "^").split("^")
                         if len(p) >= 3)
    for keyword in ("PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
                    "OtherPatientIDs", "StudyDate", "SeriesDate", "AcquisitionDate",
                    "ContentDate"):
        if ds.get(keyword):
            found.add(str(ds.get(keyword)))
    for element in ds.iterall():
        # A coding scheme's UID names a terminology (codes kept in sequences), nobody.
        if element.VR == "UI" and element.value and element.keyword != "CodingSchemeUID":
            values = element.value if isinstance(element.value, list | pydicom.multival.
                                                 MultiValue) else [element.value]
            # Standard SOP class and transfer syntax UIDs identify nobody.
            found.update(str(v) for v in values if not str(v).startswith("1.2.840.10008"))
    # A value that is also the device maker's name (MR_small's institution is "TOSHIBA",
    # its manufacturer "TOSHIBA_MEC") cannot be told apart in the bytes; the maker stays.
    makers = " ".join(str(ds.get(k, "")) for k in ("Manufacturer", "ManufacturerModelName"))
    return {f for f in found if len(f) >= 3 and f not in makers}


@pytest.mark.parametrize("name", RAW)
def test_no_original_identifier_survives_in_any_byte_of_a_corpus_file(name):
    original = pydicom.dcmread(CORPUS / name)
    _, data = run(original)
    leaked = [i for i in identifiers(original) if i.encode() in data]
    assert leaked == []


def test_no_identifier_of_a_synthetic_patient_survives(synthetic):
    for original in synthetic:
        _, data = run(original)
        leaked = [i for i in identifiers(original) if i.encode() in data]
        assert leaked == [], leaked
        for text in ("Quillfeather", "Ottoline", "Brackenbury", "Lysander",
                     "Consentry Demo Hospital", "MRN-QX731", "19610714"):
            assert text.encode() not in data


@pytest.mark.parametrize("name", RAW)
def test_files_read_back_with_pixel_data_byte_identical(name):
    original = pydicom.dcmread(CORPUS / name)
    _, data = run(original)
    back = pydicom.dcmread(BytesIO(data))
    assert back.get("PixelData") == original.get("PixelData")
    assert back.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert back.preamble == b"\x00" * 128
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID


def test_uids_are_consistent_within_a_dataset_and_differ_between_datasets(synthetic):
    first, second = synthetic[0], synthetic[1]  # same study and series, two instances
    a, _ = run(first)
    b, _ = run(second)
    assert a.StudyInstanceUID == b.StudyInstanceUID != first.StudyInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    other, _ = run(first, secret=b"dataset-2")
    assert other.StudyInstanceUID != a.StudyInstanceUID
    for uid in (a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID):
        assert len(uid) <= 64 and uid.startswith("2.25.") and uid.replace(".", "").isdigit()


def test_one_date_shift_per_patient_keeps_intervals(synthetic):
    ottoline = [ds for ds in synthetic if ds.PatientID == "MRN-QX731"]
    lysander = [ds for ds in synthetic if ds.PatientID == "MRN-ZB448"]
    shifted = [run(ds)[0] for ds in (ottoline[0], lysander[0])]

    def days(value):
        return date(int(value[:4]), int(value[4:6]), int(value[6:])).toordinal()

    offsets = [days(out.StudyDate) - days(orig.StudyDate)
               for out, orig in zip(shifted, (ottoline[0], lysander[0]), strict=True)]
    assert all(o < 0 for o in offsets) and offsets[0] != offsets[1]
    again = run(ottoline[-1])[0]
    assert days(again.StudyDate) - days(ottoline[-1].StudyDate) == offsets[0]
    assert again.LongitudinalTemporalInformationModified == "MODIFIED"


def test_without_the_dates_option_dates_are_removed(synthetic):
    out, _ = run(synthetic[0], options=frozenset())
    assert not out.get("StudyDate")
    assert out.LongitudinalTemporalInformationModified == "REMOVED"


def test_patient_characteristics_only_with_their_option(synthetic):
    kept, _ = run(synthetic[0], options=frozenset({Option.PATIENT_CHARACTERISTICS}))
    removed, _ = run(synthetic[0], options=frozenset())
    assert kept.PatientSex == "F"
    assert not removed.get("PatientSex")


def test_private_attributes_are_removed_even_inside_sequences():
    original = pydicom.dcmread(CORPUS / "waveform_ecg.dcm")
    assert any(e.tag.is_private for e in original.iterall())
    out, _ = run(original)
    assert not any(e.tag.is_private for e in out.iterall())


def test_the_method_and_consent_are_stamped(synthetic):
    out, _ = run(synthetic[0], flag="NO")
    assert out.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113108", "113109", "113105"]
    assert (out[0x00120085].value, out[0x00120084].value) == ("NO", "RESTRICTED_REUSE")
    assert out.PatientID.startswith("ANON-") and out.PatientName == out.PatientID


@pytest.mark.parametrize("name", RAW)
def test_every_value_dicognito_changes_we_change_or_remove_too(name):
    from dicognito.anonymizer import Anonymizer

    original = pydicom.dcmread(CORPUS / name)
    theirs = copy.deepcopy(original)
    Anonymizer(seed="oracle").anonymize(theirs)
    ours, _ = run(original, options=frozenset())

    def values(ds):
        """Leaf values by tag; a sequence is not a value (its items' elements are)."""
        found = {}
        for element in ds.iterall():
            if element.VR != "SQ":
                found.setdefault(element.tag, []).append(element.value)
        return found

    before, after_theirs, after_ours = values(original), values(theirs), values(ours)
    touched = [tag for tag in before if not tag.is_private
               and after_theirs.get(tag) != before[tag]]
    assert touched  # the oracle did something
    kept_by_us = [pydicom.datadict.keyword_for_tag(tag) for tag in touched
                  if after_ours.get(tag) == before[tag]
                  and any(v not in (None, "", []) for v in before[tag])]
    assert kept_by_us == []
    # Emptying a sequence is not de-identifying its values: a sequence still present keeps
    # every item, unless PS3.15 Table E.1-1 itself says Z (present, empty) for it.
    assert emptied_sequences(original, ours) <= PROFILE_EMPTIES


# Sequences Table E.1-1 (2023b) gives Z or X: their items carry who someone is. Written
# out here, not read from deid.py's table, so the oracle stays independent of it.
PROFILE_EMPTIES = {"AcquisitionContextSequence", "VerifyingObserverIdentificationCodeSequence"}


def emptied_sequences(original, ours) -> set[str]:
    """Keywords of sequences present in both whose items were dropped, walking item by item."""
    found = set()
    for element in original:
        if element.VR != "SQ" or element.tag not in ours:
            continue
        mine = ours[element.tag].value
        if len(mine) != len(element.value):
            found.add(element.keyword)
            continue
        for theirs_item, our_item in zip(element.value, mine, strict=True):
            found |= emptied_sequences(theirs_item, our_item)
    return found


def test_the_institution_is_replaced_even_where_it_matches_the_manufacturer():
    original = pydicom.dcmread(CORPUS / "MR_small.dcm")
    out, _ = run(original)
    # Table E.1-1 says X/Z/D; where the IOD is unknown we keep a dummy (D).
    assert original.InstitutionName == "TOSHIBA" and out.InstitutionName == "ANONYMOUS"
    assert out.Manufacturer == "TOSHIBA_MEC"  # not identifying; kept by the profile


# Clean Descriptors: free text keeps its clinical words and loses dates, phone numbers,
# labelled identifiers and the patient's own names and record number.
DESCRIPTIONS = [
    ("CT HEAD DOB 11/07/1961 tel 555-0199 mrn mrn-qx731", "CT HEAD"),
    ("MR KNEE LEFT", "MR KNEE LEFT"),
    ("T2 FLAIR 5mm AX", "T2 FLAIR 5mm AX"),
    ("CT ABDOMEN PELVIS W CONTRAST 2.5mm", "CT ABDOMEN PELVIS W CONTRAST 2.5mm"),
    ("C2-C3 disc, follow-up 3 months", "C2-C3 disc, follow-up 3 months"),
    ("Dr Smith called 07700 900123", "Dr Smith called"),
    ("Accession 12345678 CT ABD", "CT ABD"),
    ("Quillfeather Ottoline seen 3rd March 2024", "seen"),
    ("scan on 2024-03-01 for QUILLFEATHER", "scan on for"),
    ("results to otto.q@example.org", "results to"),
    ("US comparison with 12/2020", "US comparison with"),
    ("ID: A123456 PET CT", "PET CT"),
    ("NHS no 943 476 5919 CHEST PA", "CHEST PA"),
    ("born July 14, 1961; chest 2 views", "chest 2 views"),
    ("MRN-QX731 MR BRAIN", "MR BRAIN"),
    # What a removed value leaves: no space before a comma, no comma twice.
    ("Follow-up DOB 15/07/1961 , chest", "Follow-up, chest"),
    ("chest, DOB 15/07/1961, follow-up", "chest, follow-up"),
]


@pytest.mark.parametrize(("written", "kept"), DESCRIPTIONS)
def test_clean_descriptors_removes_dates_numbers_and_the_patients_identifiers(
        synthetic, written, kept):
    original = copy.deepcopy(synthetic[0])
    original.StudyDescription = written
    out, _ = run(original)
    assert str(out.StudyDescription) == kept
    left = str(out.StudyDescription).lower()
    assert not [i for i in ("quillfeather", "ottoline", "qx731", "1961", "0199", "900123",
                            "12345678", "5919", "@") if i in left]


def test_without_clean_descriptors_free_text_is_removed(synthetic):
    original = copy.deepcopy(synthetic[0])
    original.StudyDescription = "CT HEAD DOB 11/07/1961"
    out, _ = run(original, options=frozenset())
    assert "StudyDescription" not in out or not str(out.StudyDescription)


def test_options_given_as_any_collection_get_the_same_rules():
    from datasets.deid import rule_for

    # (0008,0020) Study Date: X/D in the basic profile, kept with Modified Dates shifted.
    for tag in (0x00080020, 0x00100010, 0x00181000, 0x60000010):
        assert rule_for(tag, [Option.MODIFIED_DATES]) == rule_for(
            tag, frozenset({Option.MODIFIED_DATES}))
    assert rule_for(0x00080020, [Option.MODIFIED_DATES]) != rule_for(0x00080020, [])


def test_a_whitelisted_private_attribute_is_kept_and_every_other_removed():
    ds = pydicom.dcmread(CORPUS / "CT_small.dcm")
    private = [int(e.tag) for e in ds if e.tag.is_private]
    assert len(private) >= 2
    kept, dropped = private[0], private[1:]
    out = deidentify(copy.deepcopy(ds), DeidContext(
        secret=b"s", options=ALL_OPTIONS, private_whitelist=frozenset({kept})),
        consent=ConsentStamp("YES"))
    assert kept in out and out[kept].value == ds[kept].value
    assert not any(tag in out for tag in dropped)


def test_cleaned_text_loses_the_patients_name_even_with_punctuation_only_parts():
    ds = pydicom.dcmread(CORPUS / "CT_small.dcm")
    # A name part of punctuation only ("--") gives the cleaning nothing to look for; the
    # other parts are still removed wherever they are written.
    ds.PatientName = "Quillfeather^Ottoline^--"
    ds.StudyDescription = "CT head for QUILLFEATHER -- follow-up"
    out, _ = run(ds)
    assert "QUILLFEATHER" not in str(out.StudyDescription).upper()
    assert "follow-up" in str(out.StudyDescription)


def test_every_value_of_a_multi_valued_date_moves_by_the_patients_one_offset():
    ds = pydicom.dcmread(CORPUS / "CT_small.dcm")
    ds.StudyDate = "20200101"
    ds.DateOfLastCalibration = ["20200101", "20200111"]
    out, _ = run(ds, options=frozenset({Option.MODIFIED_DATES}))
    moved = [date.fromisoformat(v) for v in out.DateOfLastCalibration]
    study = date.fromisoformat(out.StudyDate)
    assert moved[0] == study != date(2020, 1, 1)
    assert (moved[1] - moved[0]).days == 10


def test_a_cleaned_attribute_that_is_neither_a_date_nor_text_is_emptied():
    # Retain Device Identity cleans (C) the AE titles; an AE title names a hospital's
    # machine, and no cleaning rule for text applies to it: it stays present and empty.
    ds = pydicom.dcmread(CORPUS / "CT_small.dcm")
    ds.RetrieveAETitle = "STMARYS_PACS"
    out, data = run(ds, options=frozenset({Option.DEVICE_IDENTITY}))
    assert "RetrieveAETitle" in out and not out.RetrieveAETitle
    assert b"STMARYS" not in data


def test_each_patient_has_one_pseudonym_of_their_own_and_every_new_uid_is_a_uuid(synthetic):
    """The recipient tells patients apart by the pseudonym alone; a 2.25 UID is a UUID's
    128 bits written as an integer (PS3.5 B.2), no more."""
    pseudonyms: dict[str, set[str]] = {}
    for original in synthetic:
        out, _ = run(original)
        pseudonyms.setdefault(str(original.PatientID), set()).add(str(out.PatientID))
        assert str(out.PatientName) == str(out.PatientID)
        for element in out.iterall():
            if element.VR == "UI" and str(element.value).startswith("2.25."):
                assert int(str(element.value)[5:]) < 2 ** 128, element
    assert [len(given) for given in pseudonyms.values()] == [1, 1]
    (first,), (second,) = pseudonyms.values()
    assert first != second
    assert re.fullmatch(r"ANON-[0-9A-F]{16}", first) and re.fullmatch(r"ANON-[0-9A-F]{16}",
                                                                       second)


def test_date_shifts_run_from_one_to_3650_days_back_and_reach_both_ends():
    """The documented range (``offset_for``): never zero, never forward, at most ten years;
    over enough patients both ends come up, so the range is neither narrower nor wider."""
    context = DeidContext(secret=b"dataset-1")
    shifts = {context.offset_for("HOSPITAL-A", f"MRN-{n}") for n in range(40000)}
    assert min(shifts) == -3650 and max(shifts) == -1
