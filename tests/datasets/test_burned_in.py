"""Burned-in text found in the pixels with OCR (Debian's Tesseract, installed by CI): in
synthetic images with drawn text, in pydicom's own ultrasound, and through an export that
either leaves such a study out or blacks the text out."""

from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont

from audit.models import AuditEvent
from datasets.burned_in import PixelsUnreadable, boxes_to_black_out, find_text, redact
from datasets.exports import version_dir
from datasets.models import VersionStudy
from registry.demo import Recipe, SyntheticPatient, write_study
from registry.identifiers import mrn_digest
from registry.registration import dicom_ingest_paths
from tests.datasets.helpers import STEWARD, make_dataset, run_export

CORPUS = Path(pydicom.__file__).parent / "data" / "test_files"

# Text as it is drawn on real images: names, ids, dates, clinic labels; sizes and places vary.
DRAWN = [
    ("QUILLFEATHER OTTOLINE", (12, 10), 18, False),
    ("DOB 14/07/1961", (20, 200), 16, False),
    ("MRN 448812", (140, 30), 20, True),
    ("ST MARY CLINIC", (30, 120), 22, True),
    ("ACC 99120734", (60, 225), 14, False),
    ("LYSANDER BRACKENBURY", (8, 160), 15, True),
]


def image_with(text: str | None, at=(10, 10), size=18, colour=False) -> pydicom.Dataset:
    """An ultrasound-like image (speckle on a dark field) with ``text`` drawn in."""
    rng = np.random.default_rng(7)
    base = (rng.random((256, 320)) * 60).astype(np.uint8)
    picture = Image.fromarray(base).convert("RGB" if colour else "L")
    if text:
        ImageDraw.Draw(picture).text(at, text, fill=(235, 235, 235) if colour else 235,
                                     font=ImageFont.load_default(size=size))
    ds = pydicom.dcmread(CORPUS / "CT_small.dcm")
    ds.Modality = "US"
    ds.set_pixel_data(np.array(picture), photometric_interpretation="RGB" if colour
                      else "MONOCHROME2", bits_stored=8)
    return ds


@pytest.mark.parametrize(("text", "at", "size", "colour"), DRAWN)
def test_drawn_text_is_found_where_it_was_drawn(text, at, size, colour):
    found = find_text(image_with(text, at, size, colour))
    words = {box.text.upper() for box in found}
    assert words >= set(text.split()), (text, words)
    first = next(box for box in found if box.text.upper() == text.split()[0])
    assert abs(first.left - at[0]) <= 6 and abs(first.top - at[1]) <= 12


def test_an_image_without_text_has_none():
    assert find_text(image_with(None)) == []


def test_the_text_on_pydicoms_ultrasound_is_found():
    words = {box.text for box in find_text(pydicom.dcmread(CORPUS / "examples_ybr_color.dcm"))}
    assert "THI" in words


def test_redaction_blacks_out_the_words_and_nothing_else():
    ds = image_with("QUILLFEATHER OTTOLINE", (12, 10), 18)
    before = ds.pixel_array.copy()
    boxes, clean = boxes_to_black_out(ds)
    assert clean and {b.text for b in boxes} >= {"QUILLFEATHER", "OTTOLINE"}
    assert redact(ds, boxes) == len(boxes)
    after = ds.pixel_array
    assert find_text(ds) == []
    assert ds.BurnedInAnnotation == "NO"
    box = boxes[0]
    assert not after[box.top:box.top + box.height, box.left:box.left + box.width].any()
    assert (after[200:, 200:] == before[200:, 200:]).all()  # far from the text: untouched


def test_a_loop_is_redacted_in_every_frame():
    ds = pydicom.dcmread(CORPUS / "examples_ybr_color.dcm")
    boxes, clean = boxes_to_black_out(ds)
    assert clean
    redact(ds, boxes)
    assert ds.NumberOfFrames == 30 and ds.PhotometricInterpretation == "RGB"
    assert find_text(ds) == []


def test_an_image_that_cannot_be_decoded_says_so():
    ds = pydicom.dcmread(CORPUS / "MR_small_jpeg_ls_lossless.dcm")  # no JPEG-LS codec here
    with pytest.raises(PixelsUnreadable):
        find_text(ds)


@pytest.fixture
def ultrasounds(db, tmp_path):
    """A patient who said yes, with the ultrasound carrying text and one that cannot be
    decoded."""
    from consent.models import Purpose
    from consent.selectors import current_form
    from consent.services import consent_record
    from registry.models import Patient

    person = SyntheticPatient("MRN-US", "Ultra^Una", date(1980, 1, 1), "F")
    files = []
    for n, recipe in enumerate([
            Recipe("US ABDOMEN", "US", "ABDOMEN", ("examples_ybr_color.dcm",)),
            Recipe("US JPEG-LS", "US", "ABDOMEN", ("MR_small_jpeg_ls_lossless.dcm",))]):
        files += write_study(out_dir=tmp_path / "in", patient=person, recipe=recipe,
                             study_date=date(2025, 2, 1 + n), accession=f"US-{n}")
    dicom_ingest_paths(paths=files, actor=STEWARD, source="test")
    consent_record(patient=Patient.objects.get(mrn_index=mrn_digest("MRN-US")),
                   purpose=Purpose.objects.get(code="ai-training"), decision="permit",
                   actor=STEWARD, source="paper", form=current_form())


def fate(version, description):
    return VersionStudy.objects.get(version=version, study__description=description)


def test_an_export_leaves_out_an_ultrasound_with_text_by_default(
        steward, ultrasounds, data_dir, django_capture_on_commit_callbacks):
    version = run_export(make_dataset(steward, selection={"modality": "US"}),
                         django_capture_on_commit_callbacks)
    assert not fate(version, "US ABDOMEN").included
    assert "burned-in text found in the pixels" in fate(version, "US ABDOMEN").reason
    assert "could not be read" in fate(version, "US JPEG-LS").reason


def test_an_export_can_black_the_text_out_and_include_the_study(
        steward, ultrasounds, data_dir, django_capture_on_commit_callbacks):
    dataset = make_dataset(steward, selection={"modality": "US"}, burned_in_text="redact")
    version = run_export(dataset, django_capture_on_commit_callbacks)
    assert fate(version, "US ABDOMEN").included
    assert not fate(version, "US JPEG-LS").included
    [exported] = version_dir(version).rglob("*.dcm")
    ds = pydicom.dcmread(exported)
    assert ds.BurnedInAnnotation == "NO" and find_text(ds) == []
    event = AuditEvent.objects.get(action="export.included")
    assert event.details["pixels"].startswith("burned-in text blacked out")


def test_without_the_ocr_engine_nothing_unchecked_leaves(steward, ultrasounds, data_dir,
                                                         django_capture_on_commit_callbacks,
                                                         monkeypatch):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    version = run_export(make_dataset(steward, selection={"modality": "US"}),
                         django_capture_on_commit_callbacks)
    assert "OCR engine could not run" in fate(version, "US ABDOMEN").reason
    assert not VersionStudy.objects.filter(version=version, included=True).exists()


def test_an_ultrasound_without_text_is_checked_and_goes_out(steward, db, data_dir, tmp_path,
                                                            django_capture_on_commit_callbacks):
    """Reproduction: every ultrasound not marked Burned In Annotation NO was left out, so a
    dataset asking for ultrasound got almost nothing; now its pixels decide."""
    from pydicom.uid import generate_uid

    from consent.models import Purpose
    from consent.selectors import current_form
    from consent.services import consent_record
    from registry.models import Patient

    ds = image_with(None)
    ds.PatientID, ds.PatientName, ds.StudyDescription = "MRN-CLEAN", "Clean^Cora", "US CLEAN"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyDate = "20250301"
    assert "BurnedInAnnotation" not in ds
    path = tmp_path / "clean-us.dcm"
    ds.save_as(path, enforce_file_format=True)
    dicom_ingest_paths(paths=[path], actor=STEWARD, source="test")
    consent_record(patient=Patient.objects.get(mrn_index=mrn_digest("MRN-CLEAN")),
                   purpose=Purpose.objects.get(code="ai-training"), decision="permit",
                   actor=STEWARD, source="paper", form=current_form())
    version = run_export(make_dataset(steward, selection={"modality": "US"}),
                         django_capture_on_commit_callbacks)
    assert fate(version, "US CLEAN").included
    event = AuditEvent.objects.get(action="export.included")
    assert event.details["pixels"] == "pixels checked for burned-in text: none found"


def test_a_big_endian_image_with_text_is_left_out_with_its_reason(tmp_path):
    """pydicom-data's OBXXXX1A_expb.dcm: text found in an Explicit VR Big Endian image,
    whose pixels pydicom cannot rewrite (NotImplementedError escaped the check)."""
    from datasets.burned_in import study_pixel_check

    ds = image_with("QUILLFEATHER OTTOLINE", (12, 10), 18)
    path = tmp_path / "big-endian.dcm"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=False)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRBigEndian
    check = study_pixel_check([str(path)], redact_text=True, header_says_text=False)
    assert "big endian" in check.refused
    assert not study_pixel_check([str(path)], redact_text=False,
                                 header_says_text=False).summary


def test_pixels_pydicom_cannot_rewrite_are_refused_not_raised():
    """pydicom-data's SC_rgb_32bit.dcm: 32 bit samples, which pydicom will not write."""
    ds = image_with(None, colour=True)
    wide = ds.pixel_array.astype(np.uint32) << 24
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    ds.PixelData = wide.tobytes()
    assert ds.pixel_array.dtype == np.uint32
    with pytest.raises(PixelsUnreadable, match="cannot be rewritten"):
        redact(ds, [])
