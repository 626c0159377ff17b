"""Registration of files as other software writes them: what an export could not write
again is refused here with its reason, and what it can is registered. Each case was found
running registration and an export over public test data of other DICOM packages; the
files are rebuilt from pydicom's own test files."""

import io

import pydicom
import pydicom.encaps
import pytest

from registry.dicom import DicomRejected, read_header


def ct() -> pydicom.FileDataset:
    from tests.conftest import CORPUS

    return pydicom.dcmread(CORPUS / "CT_small.dcm")


def test_a_file_without_a_transfer_syntax_is_refused(tmp_path):
    """pydicom guesses the encoding of such a file; nobody knows its pixel encoding."""
    ds = ct()
    del ds.file_meta.TransferSyntaxUID
    path = tmp_path / "no-syntax.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True)
    with pytest.raises(DicomRejected, match="no Transfer Syntax UID"):
        read_header(path)


def test_a_private_transfer_syntax_is_refused(tmp_path):
    """GE's private implicit little endian with big endian pixels, for one: an export keeps
    the syntax, and pydicom cannot write a dataset in one it does not know."""
    ds = ct()
    ds.file_meta.TransferSyntaxUID = "1.2.840.113619.5.2"
    path = tmp_path / "ge-private.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)
    with pytest.raises(DicomRejected, match=r"unsupported transfer syntax '1\.2\.840\.113619"):
        read_header(path)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.8.1", "1.2.840.10008.1.2.4.112"])
def test_a_newer_standard_transfer_syntax_is_registered(tmp_path, syntax):
    """Deflated Image Frame Compression (pydicom-data's liver_deflate.dcm) and JPEG XL."""
    ds = ct()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = pydicom.encaps.encapsulate([ds.PixelData])
    path = tmp_path / "newer.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert read_header(path).transfer_syntax_uid == syntax


def test_sop_class_uid_is_taken_from_the_meta_when_the_dataset_lacks_it(tmp_path):
    ds = ct()
    sop_class = ds.SOPClassUID
    del ds.SOPClassUID
    path = tmp_path / "no-class.dcm"
    ds.save_as(path)
    assert read_header(path).sop_class_uid == sop_class


def test_a_file_without_any_sop_class_uid_is_refused(tmp_path):
    ds = ct()
    del ds.SOPClassUID
    del ds.file_meta.MediaStorageSOPClassUID
    path = tmp_path / "no-class.dcm"
    ds.save_as(path)
    with pytest.raises(DicomRejected, match="no SOPClassUID"):
        read_header(path)


def test_compressed_pixels_under_a_native_transfer_syntax_are_refused(tmp_path):
    """fo-dicom's GH1376.dcm: encapsulated pixel data in a file that says Explicit VR Little
    Endian. Nobody can decode its pixels as labelled; an export would pass that on."""
    from tests.conftest import CORPUS

    ds = pydicom.dcmread(CORPUS / "MR_small_RLE.dcm")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    data = io.BytesIO()
    ds.save_as(data)
    # pydicom writes the fragments with a defined length: made undefined, with the
    # delimiter, as GH1376.dcm has them.
    head = b"\xe0\x7f\x10\x00OB\x00\x00"
    at = data.getvalue().rindex(head) + len(head)
    path = tmp_path / "mislabelled.dcm"
    path.write_bytes(data.getvalue()[:at] + b"\xff\xff\xff\xff" + data.getvalue()[at + 4:]
                     + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    assert pydicom.dcmread(path)["PixelData"].is_undefined_length
    with pytest.raises(DicomRejected, match="pixel data is encapsulated"):
        read_header(path)



def test_an_overlay_kept_in_the_pixels_unused_bits_is_refused(tmp_path):
    """dcm4che's ovly_p01.dcm: two overlay planes in bits 14 and 15 of the pixel data. The
    export removed the overlay group but copied the pixels, graphics and text included."""
    ds = ct()
    ds.BitsStored, ds.HighBit = 12, 11
    ds.add_new(0x60020010, "US", ds.Rows)
    ds.add_new(0x60020011, "US", ds.Columns)
    ds.add_new(0x60020040, "CS", "G")
    ds.add_new(0x60020050, "SS", [1, 1])
    ds.add_new(0x60020100, "US", 16)  # Overlay Bits Allocated: the pixel's own
    ds.add_new(0x60020102, "US", 14)  # Overlay Bit Position
    path = tmp_path / "embedded-overlay.dcm"
    ds.save_as(path)
    with pytest.raises(DicomRejected, match=r"overlay \(group 6002\) is stored in the pixel"):
        read_header(path)


def test_an_overlay_with_its_own_data_is_registered(corpus):
    """examples_overlay.dcm keeps its overlay in Overlay Data, which the export removes."""
    assert read_header(corpus / "examples_overlay.dcm").sop_uid
