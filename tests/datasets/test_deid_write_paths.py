"""The export's file writer on damaged sources and on the ways it copies pixel data: a
source whose pixel data is cut short, broken or cut off from the header is refused
(InvalidDicomError: the export leaves the study out and says why) instead of written
without its pixels, short, or not at all; pixel data is copied whole across file systems."""

import os
import shutil
import struct
import tempfile
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.errors import InvalidDicomError

from datasets.deid import ConsentStamp, DeidContext, Option
from datasets.deid_write import _copy_range, write_deidentified, write_deidentified_pydicom

CONTEXT = DeidContext(secret=b"dataset-1", options=frozenset(Option.ALL))
YES = ConsentStamp("YES")
# The byte-level writer (falling back to pydicom for what it cannot walk) and the pydicom
# path alone: both must refuse the same damaged files.
WRITERS = [write_deidentified, write_deidentified_pydicom]
PIXEL_DATA_TAG = struct.pack("<HH", 0x7FE0, 0x0010)


def corpus_bytes(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def pixel_value(path: Path) -> bytes:
    """The pixel data element's value exactly as stored in the file."""
    ds = pydicom.dcmread(path, defer_size=0)
    raw = ds.get_item(0x7FE00010)
    return raw.value if raw.value is not None else ds.PixelData


def write_refused(writer, source: Path, out: Path, match: str) -> None:
    with pytest.raises(InvalidDicomError, match=match):
        writer(str(source), out, CONTEXT, consent=YES)
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("cut", [4, 10, 100])
def test_encapsulated_pixel_data_cut_short_is_refused(tmp_path, writer, cut):
    """JPEG2000.dcm cut inside its fragments or its sequence delimiter: the pydicom path
    wrote the first 266 of its bytes as the pixel data (cut 4), or failed with an
    AttributeError that the export does not catch (cut 10, 100)."""
    source = tmp_path / "cut.dcm"
    source.write_bytes(corpus_bytes("JPEG2000.dcm")[:-cut])
    write_refused(writer, source, tmp_path / "out", "truncated")


@pytest.mark.parametrize("writer", WRITERS)
def test_an_item_delimiter_out_of_place_is_refused_not_written_without_the_pixels(
        tmp_path, writer):
    """pydicom ends a dataset at an Item Delimitation Item where no item is open: the file
    was written without Samples per Pixel, Rows, ... and without its pixel data."""
    data = corpus_bytes("CT_small.dcm")
    at = data.index(struct.pack("<HH2s", 0x0028, 0x0002, b"US"))
    source = tmp_path / "delimiter.dcm"
    source.write_bytes(data[:at] + struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + data[at:])
    write_refused(writer, source, tmp_path / "out",
                  r"dataset ends at byte \d+ of \d+, followed by \(0028,0002\)")


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(("tag", "length"), [
    ((0xFFFE, 0xE001), None),  # not an item where the first fragment should be
    ((0xFFFE, 0xE000), 0xFFFFFFFF),  # an item of undefined length
])
def test_broken_fragments_are_refused(tmp_path, writer, tag, length):
    """pydicom reads such pixel data, but refuses to write it again (a ValueError the export
    did not catch, failing the whole job)."""
    data = bytearray(corpus_bytes("JPEG2000.dcm"))
    item = data.index(PIXEL_DATA_TAG) + 12  # past tag, VR, reserved bytes and length
    assert data[item:item + 4] == struct.pack("<HH", 0xFFFE, 0xE000)
    data[item:item + 4] = struct.pack("<HH", *tag)
    if length is not None:
        data[item + 4:item + 8] = struct.pack("<I", length)
    source = tmp_path / "fragments.dcm"
    source.write_bytes(data)
    write_refused(writer, source, tmp_path / "out",
                  rf"\({tag[0]:04X},{tag[1]:04X}\) of length .* where a fragment")


def test_a_source_on_another_file_system_is_copied_whole(tmp_path):
    """The kernel copies between files of one file system; from a source mounted elsewhere
    (here tmpfs, the export on disk) it refuses (EXDEV) and the pixels are read and
    written instead, to the same file."""
    shm = Path("/dev/shm")  # noqa: S108 - wanted for being another file system
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another file system than the test's folder")
    local = Path(get_testdata_file("CT_small.dcm"))
    expected, _ = write_deidentified(str(local), tmp_path / "local", CONTEXT, consent=YES)
    with tempfile.TemporaryDirectory(dir=shm) as elsewhere:
        source = Path(elsewhere) / "CT_small.dcm"
        shutil.copyfile(local, source)
        target, size = write_deidentified(str(source), tmp_path / "out", CONTEXT,
                                          consent=YES)
    assert target.read_bytes() == expected.read_bytes()
    assert size == target.stat().st_size
    assert pixel_value(target) == pixel_value(local)


def test_a_source_that_ends_during_the_copy_fails_it(tmp_path):
    """A source cut while its pixel data is copied (its length was checked just before):
    an error, never a short file nor a copy that waits forever for bytes."""
    source = tmp_path / "source"
    source.write_bytes(b"pixel" * 20)
    with (open(source, "rb") as src, open(tmp_path / "out", "wb") as out,
          pytest.raises(OSError, match="ended while its pixel data was copied")):
        _copy_range(src, out, 0, 200)
