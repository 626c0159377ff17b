"""De-identified files stay valid DICOM: Debian's dciodvfy (dicom3tools, installed by CI)
finds no error in an output that it did not find in its source, and references between
objects (Source Image, Referenced Image, Referenced Series) keep their items with UIDs
remapped consistently, so they still resolve inside an export."""

import re
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

from datasets.deid import ConsentStamp, DeidContext, Option, deidentify
from datasets.deid_write import write_deidentified

CORPUS = Path(pydicom.__file__).parent / "data" / "test_files"
DCIODVFY = shutil.which("dciodvfy")
needs_dciodvfy = pytest.mark.skipif(
    DCIODVFY is None and not __import__("os").environ.get("CI"),
    reason="needs dicom3tools' dciodvfy (apt-get install dicom3tools; CI installs it)")

def registrable() -> list[str]:
    """Every file of pydicom's corpus that registration accepts (the others never reach an
    export): CT, MR, RT, SR, overlays, waveforms, secondary captures, every syntax."""
    from registry.dicom import DicomRejected, read_header

    names = []
    for path in sorted(CORPUS.rglob("*")):
        try:
            if path.is_file():
                read_header(path)
                names.append(path.relative_to(CORPUS).as_posix())
        except (DicomRejected, OSError, ValueError):
            continue
    return names


FILES = registrable()


def deidentified(source: Path, out_dir: Path, secret: bytes = b"dataset-1") -> Path:
    """Written as an export writes it: the header de-identified, the pixels copied."""
    target, _ = write_deidentified(str(source), out_dir, DeidContext(
        secret=secret, options=frozenset(Option.ALL)), consent=ConsentStamp("YES"))
    return target


def errors(path: Path) -> set[str]:
    """dciodvfy's errors, with values that de-identification legitimately changes (UIDs,
    dates, names, numbers inside messages) folded, so the kinds of error are compared."""
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True,
                            timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    folded = set()
    for line in lines:
        if line.startswith("Error"):
            line = re.sub(r"<[^>]*>\s*=\s*<[^>]*>", "<value>", line)
            line = re.sub(r"\d+(?:\.\d+)+", "<uid>", line)
            folded.add(re.sub(r"\d+", "#", line))
    return folded


@needs_dciodvfy
@pytest.mark.parametrize("name", FILES)
def test_an_export_adds_no_validator_error_its_source_lacks(name, tmp_path):
    source = CORPUS / name
    added = errors(deidentified(source, tmp_path)) - errors(source)
    assert added == set(), added


def test_the_whole_registrable_corpus_is_checked():
    assert len(FILES) > 100  # pydicom 3.0's corpus, not a handful


def test_source_references_keep_their_items_with_consistently_remapped_uids(tmp_path):
    context = DeidContext(secret=b"dataset-1", options=frozenset(Option.ALL))
    original = pydicom.dcmread(CORPUS / "JPEG2000.dcm")
    referenced = original.SourceImageSequence[0].ReferencedSOPInstanceUID
    out = deidentify(pydicom.dcmread(CORPUS / "JPEG2000.dcm"), context,
                     consent=ConsentStamp("YES"))
    assert len(out.SourceImageSequence) == len(original.SourceImageSequence)
    item = out.SourceImageSequence[0]
    assert item.ReferencedSOPClassUID == original.SourceImageSequence[0].ReferencedSOPClassUID
    assert item.ReferencedSOPInstanceUID == context.remap_uid(referenced)
    assert item.ReferencedSOPInstanceUID != referenced


def test_a_reference_resolves_inside_the_export(tmp_path):
    """A derived object made here that points at a source image: once both are exported,
    the reference names the exported source's SOPInstanceUID."""
    context = DeidContext(secret=b"dataset-1", options=frozenset(Option.ALL))
    source = pydicom.dcmread(CORPUS / "CT_small.dcm")
    derived = pydicom.dcmread(CORPUS / "CT_small.dcm")
    derived.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    def reference() -> pydicom.Dataset:
        item = pydicom.Dataset()
        item.ReferencedSOPClassUID = source.SOPClassUID
        item.ReferencedSOPInstanceUID = source.SOPInstanceUID
        return item

    derived.SourceImageSequence = pydicom.Sequence([reference()])
    series_item = pydicom.Dataset()
    series_item.SeriesInstanceUID = source.SeriesInstanceUID
    series_item.ReferencedInstanceSequence = pydicom.Sequence([reference()])
    derived.ReferencedSeriesSequence = pydicom.Sequence([series_item])
    exported_source = deidentify(source, context, consent=ConsentStamp("YES"))
    exported = deidentify(derived, context, consent=ConsentStamp("YES"))
    assert exported.SourceImageSequence[0].ReferencedSOPInstanceUID == \
        exported_source.SOPInstanceUID
    series = exported.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == exported_source.SeriesInstanceUID
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == \
        exported_source.SOPInstanceUID


def test_overlays_go_as_whole_groups():
    original = pydicom.dcmread(CORPUS / "examples_overlay.dcm")
    assert any(e.tag.group == 0x6000 for e in original)
    out = deidentify(original, DeidContext(secret=b"x"), consent=ConsentStamp("YES"))
    assert not [e for e in out if 0x6000 <= e.tag.group <= 0x60FF]


def test_a_person_identification_code_is_not_kept_in_a_replaced_sequence():
    ds = pydicom.dcmread(CORPUS / "CT_small.dcm")
    code = pydicom.Dataset()
    code.CodeValue = "EMP-778812"
    code.CodingSchemeDesignator = "HOSPITAL"
    code.CodeMeaning = "Dr Quillfeather"
    observer = pydicom.Dataset()
    observer.PersonIdentificationCodeSequence = pydicom.Sequence([code])
    ds.OperatorIdentificationSequence = pydicom.Sequence([observer])
    out = deidentify(ds, DeidContext(secret=b"x"), consent=ConsentStamp("YES"))
    kept = out.OperatorIdentificationSequence[0].PersonIdentificationCodeSequence[0]
    assert "778812" not in str(kept) and "Quillfeather" not in str(kept)


def test_a_replaced_sequence_keeps_what_cannot_name_anyone():
    """In a sequence the profile replaces (D), text the table does not name goes; a code's
    mapping resource and context group (CS), which name a terminology, stay as written."""
    ds = pydicom.dcmread(CORPUS / "CT_small.dcm")
    code = pydicom.Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "EMP-778812", "HOSPITAL"
    code.CodeMeaning = "Dr Quillfeather"
    code.MappingResource, code.ContextIdentifier = "DCMR", "7452"
    observer = pydicom.Dataset()
    observer.PersonIdentificationCodeSequence = pydicom.Sequence([code])
    ds.OperatorIdentificationSequence = pydicom.Sequence([observer])
    out = deidentify(ds, DeidContext(secret=b"x"), consent=ConsentStamp("YES"))
    kept = out.OperatorIdentificationSequence[0].PersonIdentificationCodeSequence[0]
    assert kept.CodeMeaning == "ANONYMOUS"
    assert (kept.MappingResource, kept.ContextIdentifier) == ("DCMR", "7452")
