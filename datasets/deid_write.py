"""One de-identified file written at close to copy speed.

Only the header is de-identified: at byte level where the file allows (datasets/
deid_bytes.py: kept elements copied as bytes, only what the profile changes encoded), else
parsed by pydicom (``stop_before_pixels``). The pixel data element is then copied byte for
byte from the source, never decoded: it carries no header text, and its bytes are exactly
the source's (so a codec we lack cannot fail the export, and the recipient gets the very
pixels that were acquired). The burned-in text check is the one reader of pixels, and a
file whose text is blacked out is rewritten whole.

A file with anything but trailing padding after its pixel data (a digital signature, a
private element) is read and rewritten whole too, so nothing escapes the profile; deflated
files as well, since their bytes on disk are not the elements. A file whose pixel data is
shorter than its header says, or whose encapsulated fragments are broken, is refused
(InvalidDicomError), never passed on short."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from datasets.burned_in import TextBox, redact
from datasets.deid import ConsentStamp, DeidContext, deidentify
from datasets.deid_bytes import (
    BYTES,
    SourceHeader,
    deidentified_header,
    file_stat,
    instance_path,
    read_header,
)

ITEM = 0xFFFEE000
SEQUENCE_END = 0xFFFEE0DD
TRAILING_PADDING = 0xFFFCFFFC
# Explicit VRs whose length takes four bytes after two reserved ones (PS3.5 7.1.2).
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
            b"UT", b"UV"}
COPY_CHUNK = 1 << 20


def open_source(path: str) -> BinaryIO:
    """The source bytes of one registered instance. The one place an export opens them, so
    a source that is not a local file (a PACS read over DICOMweb) can be put here."""
    return open(path, "rb")


def read_source(source: str, context: DeidContext) -> SourceHeader:
    """The source's header read once, for the safety check (``burned_in``) and then for
    ``write_deidentified(header=...)``. InvalidDicomError when it is not DICOM or broken."""
    with open_source(source) as fp:
        return read_header(fp, source, context)


def write_deidentified(source: str, staging: Path, context: DeidContext, *,
                       consent: ConsentStamp, boxes: list[TextBox] | None = None,
                       header: SourceHeader | None = None) -> tuple[Path, int]:
    """De-identify ``source`` into ``staging/<study>/<series>/<sop>.dcm``; returns the path
    written and its size. ``boxes``: burned-in text to black out first (pixels rewritten).
    ``header``: what ``read_source`` read of it (read again if the file changed since).

    At byte level (datasets/deid_bytes.py) where the file allows; big endian, deflated,
    data after the pixels and other unusual files take the pydicom path."""
    if boxes:
        return write_deidentified_pydicom(source, staging, context, consent=consent,
                                          boxes=boxes)
    with open_source(source) as fp:
        if header is None or header.path != source or header.stat != file_stat(fp):
            header = read_header(fp, source, context)
        if header.route != BYTES:
            return _write_pydicom(fp, staging, context, consent)
        written = deidentified_header(header, context, consent=consent)
        start, end = header.pixel_span
        target = instance_path(staging, written.study, written.series,
                               written.instance)
        with open(target, "wb") as out:
            out.write(written.header)
            out.flush()
            _copy_range(fp, out, start, end)
            size = out.tell()
    return target, size


def write_deidentified_pydicom(source: str, staging: Path, context: DeidContext, *,
                               consent: ConsentStamp, boxes: list[TextBox] | None = None
                               ) -> tuple[Path, int]:
    """The pydicom path: the header parsed and written by pydicom, the pixel data copied
    (the whole file rewritten where it must be). The byte-level path's reference."""
    with open_source(source) as fp:
        if boxes:
            return _write_whole(pydicom.dcmread(fp), staging, context, consent, boxes)
        return _write_pydicom(fp, staging, context, consent)


def _write_pydicom(fp: BinaryIO, staging: Path, context: DeidContext,
                   consent: ConsentStamp) -> tuple[Path, int]:
    fp.seek(0)
    ds = pydicom.dcmread(fp, stop_before_pixels=True)
    span = _pixel_span(fp, ds)
    if span is None:
        fp.seek(0)
        return _write_whole(pydicom.dcmread(fp), staging, context, consent, None)
    ds = deidentify(ds, context, consent=consent)
    header = io.BytesIO()
    ds.save_as(header, enforce_file_format=True)
    target = _target(staging, ds)
    with open(target, "wb") as out:
        out.write(header.getbuffer())
        out.flush()
        _copy_range(fp, out, *span)
        size = out.tell()
    return target, size


def _write_whole(ds: pydicom.Dataset, staging: Path, context: DeidContext,
                 consent: ConsentStamp, boxes: list[TextBox] | None) -> tuple[Path, int]:
    if boxes:
        redact(ds, boxes)
    ds = deidentify(ds, context, consent=consent)
    target = _target(staging, ds)
    ds.save_as(target, enforce_file_format=True)
    return target, target.stat().st_size


def _target(staging: Path, ds: pydicom.Dataset) -> Path:
    return instance_path(staging, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def _pixel_span(fp: BinaryIO, ds: pydicom.Dataset) -> tuple[int, int] | None:
    """Where the pixel data element starts and ends in ``fp`` (positioned at it by the
    stopped read); None when the file must be rewritten whole instead."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or syntax == DeflatedExplicitVRLittleEndian:
        return None
    start = fp.tell()
    size = os.fstat(fp.fileno()).st_size
    return pixel_span_at(fp, start, size, little=syntax.is_little_endian,
                         implicit=syntax.is_implicit_VR)


def pixel_span_at(fp: BinaryIO, start: int, size: int, *, little: bool, implicit: bool
                  ) -> tuple[int, int] | None:
    """Where the pixel data element starting at ``start`` (``fp`` there) ends; None when
    the file must be rewritten whole instead. InvalidDicomError when the pixel data is cut
    short or malformed, or something else stands where it should: written out, the
    recipient would get a file with pixels missing, short, or that pydicom cannot write."""
    order = "<" if little else ">"
    if start >= size:
        return start, start  # no pixel data (a structured report, a presentation state)
    head = _read(fp, 8)
    group, element = struct.unpack(f"{order}HH", head[:4])
    if (group << 16 | element) not in (0x7FE00008, 0x7FE00009, 0x7FE00010):
        # pydicom ends a dataset at an Item Delimitation Item where no item is open (and
        # at an undefined-length value cut short): the elements after it, the pixel data
        # among them, would be left out of the rewritten file without a word.
        raise InvalidDicomError(f"the dataset ends at byte {start} of {size}, followed by "
                                f"({group:04X},{element:04X}), not by pixel data: an item "
                                "delimiter out of place or a damaged element")
    if implicit:
        (length,) = struct.unpack(f"{order}I", head[4:])
    elif head[4:6] in LONG_VRS:
        (length,) = struct.unpack(f"{order}I", _read(fp, 4))
    else:
        (length,) = struct.unpack(f"{order}H", head[6:])
    end = _end_of_fragments(fp, order) if length == 0xFFFFFFFF else fp.tell() + length
    if end > size:
        # Copied as is, the recipient would get a file that lies about its pixels.
        raise InvalidDicomError(f"the pixel data ends {end - size} bytes before its stated "
                                "length: the file is truncated")
    return (start, end) if _only_padding_after(fp, end, size, order) else None


def _read(fp: BinaryIO, count: int) -> bytes:
    data = fp.read(count)
    if len(data) < count:
        raise InvalidDicomError("the file ends inside its pixel data: it is truncated")
    return data


def _end_of_fragments(fp: BinaryIO, order: str) -> int:
    """Past the sequence delimiter of encapsulated pixel data (PS3.5 A.4)."""
    while True:
        group, element, length = struct.unpack(f"{order}HHI", _read(fp, 8))
        tag = group << 16 | element
        if tag == SEQUENCE_END:
            return fp.tell()
        if tag != ITEM or length == 0xFFFFFFFF:
            # pydicom reads such pixel data but refuses to write it again.
            raise InvalidDicomError(f"({group:04X},{element:04X}) of length {length:#x} "
                                    f"at byte {fp.tell() - 8} where a fragment of the "
                                    "encapsulated pixel data should be: the file is damaged")
        fp.seek(length, os.SEEK_CUR)


def _only_padding_after(fp: BinaryIO, end: int, size: int, order: str) -> bool:
    """Nothing but Data Set Trailing Padding after the pixels (it is left behind)."""
    if end == size:
        return True
    fp.seek(end)
    head = fp.read(4)
    return len(head) == 4 and struct.unpack(f"{order}HH", head) == (0xFFFC, 0xFFFC)


def _copy_range(source: BinaryIO, out: BinaryIO, start: int, end: int) -> None:
    """The source's bytes [start, end) appended to ``out``, in the kernel where it can."""
    remaining = end - start
    offset = start
    try:
        while remaining > 0:
            copied = os.copy_file_range(source.fileno(), out.fileno(), remaining, offset)
            if copied == 0:
                break
            offset += copied
            remaining -= copied
        out.seek(0, os.SEEK_END)
        if remaining == 0:
            return
    except (AttributeError, OSError):
        pass  # no copy_file_range here (or across these file systems): plain reads
    source.seek(offset)
    out.seek(0, os.SEEK_END)
    while remaining > 0:
        chunk = source.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise OSError("the source file ended while its pixel data was copied")
        out.write(chunk)
        remaining -= len(chunk)
