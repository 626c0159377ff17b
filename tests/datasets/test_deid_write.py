"""The export's file writer: the header de-identified, the pixel data copied byte for byte
(never decoded), and the same file as de-identifying the whole dataset would give."""

import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from datasets.deid import ConsentStamp, DeidContext, Option, deidentify
from datasets.deid_write import write_deidentified
from tests.datasets.test_deid_validity import CORPUS, FILES

CONTEXT = DeidContext(secret=b"dataset-1", options=frozenset(Option.ALL))
YES = ConsentStamp("YES")


def whole(source: Path, tmp_path: Path) -> pydicom.Dataset:
    """The reference: read everything, de-identify, write, read back."""
    out = deidentify(pydicom.dcmread(source), CONTEXT, consent=YES)
    out.save_as(tmp_path / "whole.dcm", enforce_file_format=True)
    return pydicom.dcmread(tmp_path / "whole.dcm")


def pixel_bytes(path: Path) -> bytes:
    """The pixel data element's value exactly as stored in the file."""
    ds = pydicom.dcmread(path, defer_size=0)
    for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
        if tag in ds:
            raw = ds.get_item(tag)
            return raw.value if raw.value is not None else ds[tag].value
    return b""


@pytest.mark.parametrize("name", FILES)
def test_the_written_file_is_the_whole_dataset_de_identified_with_the_same_pixels(
        name, tmp_path):
    source = CORPUS / name
    target, size = write_deidentified(str(source), tmp_path / "out", CONTEXT, consent=YES)
    assert size == target.stat().st_size
    written = pydicom.dcmread(target)
    reference = whole(source, tmp_path)
    assert written == reference
    assert written.file_meta == reference.file_meta
    assert pixel_bytes(target) == pixel_bytes(source)


def test_pixels_are_never_decoded(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(refuse))
    source = CORPUS / "JPEG2000.dcm"  # a codec the export never needs
    target, _ = write_deidentified(str(source), tmp_path, CONTEXT, consent=YES)
    assert pixel_bytes(target) == pixel_bytes(source)


def test_an_element_after_the_pixels_is_de_identified_too(tmp_path):
    """Anything after the pixel data is not copied blindly: the whole file is rewritten."""
    source = tmp_path / "tail.dcm"
    data = (CORPUS / "CT_small.dcm").read_bytes()
    # A private element (odd group 7FE1) after the pixel data, explicit VR little endian.
    value = b"Smith^John "
    source.write_bytes(data + struct.pack("<HH2sH", 0x7FE1, 0x0010, b"LO", len(value))
                       + value)
    assert "Smith" in str(pydicom.dcmread(source).get((0x7FE1, 0x0010)).value)
    target, _ = write_deidentified(str(source), tmp_path / "out", CONTEXT, consent=YES)
    assert b"Smith" not in target.read_bytes()
    assert pixel_bytes(target) == pixel_bytes(CORPUS / "CT_small.dcm")


def test_trailing_padding_is_left_behind(tmp_path):
    source = tmp_path / "padded.dcm"
    data = (CORPUS / "CT_small.dcm").read_bytes()
    source.write_bytes(data + struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, 4) + b"\0" * 4)
    target, _ = write_deidentified(str(source), tmp_path / "out", CONTEXT, consent=YES)
    clean, _ = write_deidentified(str(CORPUS / "CT_small.dcm"), tmp_path / "clean", CONTEXT,
                                  consent=YES)
    assert target.read_bytes() == clean.read_bytes()


def test_truncated_pixel_data_is_refused_not_copied_short(tmp_path):
    source = tmp_path / "short.dcm"
    source.write_bytes((CORPUS / "CT_small.dcm").read_bytes()[:-1000])
    with pytest.raises(InvalidDicomError, match="truncated"):
        write_deidentified(str(source), tmp_path / "out", CONTEXT, consent=YES)
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize("content", [b"", b"not dicom at all" * 20])
def test_a_file_that_is_not_dicom_is_refused(tmp_path, content):
    source = tmp_path / "bad.dcm"
    source.write_bytes(content)
    with pytest.raises(InvalidDicomError):
        write_deidentified(str(source), tmp_path / "out", CONTEXT, consent=YES)
    assert not (tmp_path / "out").exists()
