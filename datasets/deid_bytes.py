"""De-identification at byte level: the header's elements are found without decoding them,
those the profile keeps are copied as bytes from the source, and pydicom decodes and
encodes only the few it changes, removes by rule, adds, or needs to decide (issue 15).

The decision for each top-level element is ``deid.element_fate``, the same one ``deid.py``'s
walk makes; every element it does not simply keep or drop goes, with the elements
``deidentify`` reads and writes (``deid.HEADER_TAGS``), through pydicom's own reader,
``deidentify`` and pydicom's own writer. So what the profile does to an element is decided
and encoded by exactly the code the whole-dataset path runs, and the result parses to the
same dataset (tests/datasets/test_deid_bytes.py compares both on pydicom's whole corpus).

Only explicit and implicit VR little endian (and the encapsulated syntaxes, which are
explicit VR little endian) are walked here. Anything unusual (big endian, deflated, a
command set, a transfer syntax that contradicts the first element, data after the pixels)
is handed back to the pydicom path (``route`` PYDICOM). A file whose structure is broken
(a length that runs past the end, an element with no VR, a truncated tag, elements out of
order, which is what a wrong length looks like) is refused with InvalidDicomError before
anything is written."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import data_element_generator
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    PrivateTransferSyntaxes,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

from datasets.deid import (
    COPY,
    DROP,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION,
    STAMP_TAGS,
    ConsentStamp,
    DeidContext,
    deidentify,
    deidentify_elements,
    element_fate,
    stamp,
)

ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
TRANSFER_SYNTAX = 0x00020010
BURNED_IN_ANNOTATION = 0x00280301
UNDEFINED = 0xFFFFFFFF
LONG_VRS = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_32)
SHORT_VRS = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_16)
FIRST_READ = 1 << 16
DICM = b"DICM"

_TAG = struct.Struct("<HH")
_SHORT = struct.Struct("<HH2sH")
_LONG_LENGTH = struct.Struct("<I")
_IMPLICIT = struct.Struct("<HHI")

BYTES = "bytes"
PYDICOM = "pydicom"


class _Unusual(Exception):
    """Valid as far as we know, but not for this walk: the pydicom path takes the file."""


class _NeedMore(Exception):
    def __init__(self, end: int) -> None:
        self.end = end


@dataclass
class SourceHeader:
    """One source file read once, for the safety check and for the writer: the header's
    bytes with where each top-level element lies, and where the pixel data lies."""

    path: str
    stat: tuple[int, int, int, int]
    route: str
    burned_in: str = ""
    data: bytes = b""
    implicit: bool = False
    syntax: UID | None = None
    # (tag, start, end, fate) of each top-level element before the pixel data.
    elements: list[tuple[int, int, int, int]] = field(default_factory=list)
    pixel_span: tuple[int, int] = (0, 0)


def file_stat(fp: BinaryIO) -> tuple[int, int, int, int]:
    st = os.fstat(fp.fileno())
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def read_header(fp: BinaryIO, path: str, context: DeidContext) -> SourceHeader:
    """The header of the open file ``fp`` walked at byte level (route BYTES), or marked for
    the pydicom path (route PYDICOM, ``burned_in`` still read). InvalidDicomError when the
    file is not DICOM or its structure is broken."""
    stat = file_stat(fp)
    size = stat[2]
    fp.seek(0)
    data = fp.read(min(size, FIRST_READ))
    while True:
        try:
            return _walk(fp, path, stat, data, context)
        except _NeedMore as more:
            if more.end > size:
                raise InvalidDicomError(
                    f"an element's stated length runs {more.end - size} bytes past the end "
                    "of the file: the file is truncated or a length is wrong") from None
            fp.seek(len(data))
            data += fp.read(max(more.end, 2 * len(data)) - len(data))
        except _Unusual:
            return _pydicom_header(fp, path, stat)


def _pydicom_header(fp: BinaryIO, path: str, stat: tuple[int, int, int, int]
                    ) -> SourceHeader:
    import pydicom

    fp.seek(0)
    ds = pydicom.dcmread(fp, stop_before_pixels=True)
    return SourceHeader(path=path, stat=stat, route=PYDICOM,
                        burned_in=str(ds.get("BurnedInAnnotation", "") or "").upper())


def _walk(fp: BinaryIO, path: str, stat: tuple[int, int, int, int], data: bytes,
          context: DeidContext) -> SourceHeader:
    size = stat[2]
    if len(data) < 132 or data[128:132] != DICM:
        raise InvalidDicomError("File is missing DICOM File Meta Information header or the "
                                "'DICM' prefix is missing from the header.")
    pos, syntax = _file_meta(data, size)
    if syntax is None or not syntax.is_transfer_syntax or syntax in (
            ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian) or \
            syntax in PrivateTransferSyntaxes:
        raise _Unusual
    implicit = syntax == ImplicitVRLittleEndian
    # _file_meta returns only where it read a tag of the dataset: its first 8 bytes are in.
    first_group = _TAG.unpack_from(data, pos)[0]
    if first_group < 8:
        raise _Unusual  # a command set, or more of the file meta: pydicom's business
    found_implicit = not (0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B)
    if found_implicit != implicit:
        raise _Unusual  # pydicom switches encoding here, with a warning
    fate_of = _fates(context, implicit)
    elements: list[tuple[int, int, int, int]] = []
    append = elements.append
    last = -1
    burned_in = ""
    end_of_data = len(data)
    while True:
        if pos == size:
            pixel_start = pos
            break
        if pos + 8 > end_of_data:
            if pos + 8 > size:
                raise InvalidDicomError(f"the file ends {size - pos} bytes into an element's "
                                        "tag: it is truncated")
            raise _NeedMore(pos + 8)
        if implicit:
            group, number, length = _IMPLICIT.unpack_from(data, pos)
            vr = b""
            start = pos + 8
        else:
            group, number, vr, length = _SHORT.unpack_from(data, pos)
            if vr in LONG_VRS:
                if pos + 12 > end_of_data:
                    raise _NeedMore(pos + 12)
                length = _LONG_LENGTH.unpack_from(data, pos + 8)[0]
                start = pos + 12
            elif vr in SHORT_VRS:
                start = pos + 8
            elif group == 0xFFFE:
                raise _Unusual
            else:
                raise InvalidDicomError(
                    f"no valid VR ({vr!r}) for ({group:04X},{number:04X}) at byte {pos}: "
                    "the file is damaged or an earlier length is wrong")
        tag = group << 16 | number
        if tag in PIXEL_TAGS:
            pixel_start = pos
            break
        if group == 0xFFFE:
            raise _Unusual  # item or delimiter at the top level: pydicom stops there
        if tag <= last:
            raise InvalidDicomError(
                f"({group:04X},{number:04X}) at byte {pos} is out of order after "
                f"({last >> 16:04X},{last & 0xFFFF:04X}): the file is damaged or an "
                "earlier length is wrong")
        last = tag
        if length == UNDEFINED:
            end = _undefined_end(data, start, size, implicit)
            fate = fate_of(tag, vr, True)
        else:
            end = start + length
            if end > end_of_data:
                raise _NeedMore(end)
            fate = fate_of(tag, vr, False)
        if tag == BURNED_IN_ANNOTATION:
            burned_in = _text_value(data, tag, vr or None, pos, start, end, implicit)
        if fate != DROP:
            append((tag, pos, end, fate))
        pos = end
    span = _pixel_span(fp, pixel_start, size, implicit)
    if span is None:
        raise _Unusual  # anything after the pixels: rewritten whole, by the pydicom path
    return SourceHeader(path=path, stat=stat, route=BYTES, burned_in=burned_in,
                        data=data[:pixel_start], implicit=implicit, syntax=syntax,
                        elements=elements, pixel_span=span)


def _file_meta(data: bytes, size: int) -> tuple[int, UID | None]:
    """Past the file meta group (always explicit VR little endian), and its syntax."""
    pos = 132
    syntax = None
    while pos + 8 <= len(data):
        group, number, vr, length = _SHORT.unpack_from(data, pos)
        if group != 2:
            return pos, syntax
        if vr in LONG_VRS:
            if pos + 12 > len(data):
                break
            length = _LONG_LENGTH.unpack_from(data, pos + 8)[0]
            start = pos + 12
        elif vr in SHORT_VRS:
            start = pos + 8
        else:
            raise _Unusual  # implicit VR file meta: pydicom retries it so
        if length == UNDEFINED:
            raise _Unusual
        if start + length > len(data):
            break
        if group << 16 | number == TRANSFER_SYNTAX:
            raw = RawDataElement(TRANSFER_SYNTAX, vr.decode(), length,
                                 data[start:start + length], start, False, True)
            syntax = UID(convert_raw_data_element(raw).value)
        pos = start + length
    if pos + 8 > size or len(data) >= size:
        raise InvalidDicomError("the file ends inside its file meta information")
    raise _NeedMore(pos + 12)


def _undefined_end(data: bytes, pos: int, size: int, implicit: bool) -> int:
    """Past the sequence delimiter of an undefined-length value starting at ``pos``: items
    (of a sequence, or fragments) each of defined or undefined length."""
    while True:
        if pos + 8 > len(data):
            raise _NeedMore(pos + 8) if pos + 8 <= size else InvalidDicomError(
                "the file ends inside a sequence: it is truncated")
        group, number, length = _IMPLICIT.unpack_from(data, pos)
        tag = group << 16 | number
        pos += 8
        if tag == SEQUENCE_END:
            return pos
        if tag != ITEM:
            raise InvalidDicomError(f"({group:04X},{number:04X}) where a sequence item "
                                    f"should be, at byte {pos - 8}: the file is damaged")
        if length == UNDEFINED:
            pos = _item_end(data, pos, size, implicit)
        else:
            pos += length
            if pos > len(data):
                raise _NeedMore(pos)


def _item_end(data: bytes, pos: int, size: int, implicit: bool) -> int:
    """Past the item delimiter of an undefined-length item whose elements start at ``pos``."""
    while True:
        if pos + 8 > len(data):
            raise _NeedMore(pos + 8) if pos + 8 <= size else InvalidDicomError(
                "the file ends inside a sequence item: it is truncated")
        if implicit:
            group, number, length = _IMPLICIT.unpack_from(data, pos)
            start = pos + 8
        else:
            group, number, vr, length = _SHORT.unpack_from(data, pos)
            if group == 0xFFFE:
                length = _LONG_LENGTH.unpack_from(data, pos + 4)[0]
                start = pos + 8
            elif vr in LONG_VRS:
                if pos + 12 > len(data):
                    raise _NeedMore(pos + 12)
                length = _LONG_LENGTH.unpack_from(data, pos + 8)[0]
                start = pos + 12
            elif vr in SHORT_VRS:
                start = pos + 8
            else:
                raise _Unusual  # an item in implicit VR inside an explicit file
        if group << 16 | number == ITEM_END:
            return start
        if length == UNDEFINED:
            pos = _undefined_end(data, start, size, implicit)
        else:
            pos = start + length
            if pos > len(data):
                raise _NeedMore(pos)


def _text_value(data: bytes, tag: int, vr: bytes | None, pos: int, start: int, end: int,
                implicit: bool) -> str:
    raw = RawDataElement(tag, vr.decode() if vr else None, end - start, data[start:end],
                         start, implicit, True)
    value = convert_raw_data_element(raw).value
    return str(value or "").upper()


_FATE_TABLES: dict[tuple, dict] = {}


def _fates(context: DeidContext, implicit: bool):
    """``element_fate`` for this context, remembered per (tag, VR, undefined length): every
    file of an export asks the same few hundred questions."""
    key = (context.options, context.private_whitelist, implicit)
    table = _FATE_TABLES.get(key)
    if table is None:
        if len(_FATE_TABLES) > 64:
            _FATE_TABLES.clear()
        table = _FATE_TABLES[key] = {}
    options, whitelist = context.options, context.private_whitelist

    def fate_of(tag: int, vr: bytes, undefined: bool) -> int:
        try:
            return table[tag, vr, undefined]
        except KeyError:
            fate = table[tag, vr, undefined] = element_fate(
                tag, vr.decode() if vr else None, undefined, options, whitelist)
            return fate

    return fate_of


def _pixel_span(fp: BinaryIO, start: int, size: int, implicit: bool) -> tuple[int, int] | None:
    from datasets.deid_write import pixel_span_at

    fp.seek(start)
    return pixel_span_at(fp, start, size, little=True, implicit=implicit)


@dataclass
class Written:
    header: bytes
    study: str
    series: str
    instance: str


def deidentified_header(header: SourceHeader, context: DeidContext, *,
                        consent: ConsentStamp) -> Written:
    """The de-identified file's bytes up to its pixel data: preamble, new file meta, and the
    dataset with kept elements copied from the source and the rest from ``deidentify``."""
    data = header.data
    picked = b"".join(data[start:end] for _, start, end, fate in header.elements
                      if fate != COPY)
    ds = _decoded(picked, header.implicit)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = header.syntax
    present = [tag for tag in STAMP_TAGS if tag in ds]
    if all(ds.get_item(tag).VR in (None, dictionary_VR(tag)) for tag in present):
        # The stamp is the same for every file of the export: encoded once, by pydicom.
        # Where the source has some of it already (another de-identifier's), deidentify
        # would only overwrite their values, keeping VRs that are the dictionary's anyway.
        for tag in present:
            del ds[tag]
        deidentify_elements(ds, context)
        made = _stamp_elements(context, consent, header.implicit)
    else:  # some with another VR: deidentify sets their values, keeping those VRs
        ds = deidentify(ds, context, consent=consent)
        made = []
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, header.implicit
    write_dataset(body, ds)
    encoded = body.getvalue()
    view = memoryview(encoded)
    made = sorted(made + [(tag, view[start:end])
                          for tag, start, end in _split(encoded, 0, header.implicit)],
                  key=lambda pair: pair[0])
    parts: list = [PREAMBLE,
                   _file_meta_encoded(ds.SOPClassUID, ds.SOPInstanceUID, header.syntax)]
    # Merge by tag: the kept source ranges (contiguous ones as one slice) and the encoded.
    source = memoryview(data)
    made_at = 0
    run_start = run_end = -1
    # A kept (COPY) tag is never among the encoded ones: deidentify writes only
    # HEADER_TAGS (the stamp's among them), which element_fate always decodes.
    for tag, start, end, fate in header.elements:
        if fate != COPY:
            continue
        while made_at < len(made) and made[made_at][0] < tag:
            if run_start >= 0:
                parts.append(source[run_start:run_end])
                run_start = -1
            parts.append(made[made_at][1])
            made_at += 1
        if run_start >= 0 and start == run_end:
            run_end = end
        else:
            if run_start >= 0:
                parts.append(source[run_start:run_end])
            run_start, run_end = start, end
    if run_start >= 0:
        parts.append(source[run_start:run_end])
    parts += [element for _, element in made[made_at:]]
    return Written(header=b"".join(parts), study=ds.StudyInstanceUID,
                   series=ds.SeriesInstanceUID, instance=ds.SOPInstanceUID)


PREAMBLE = b"\x00" * 128 + DICM
_STAMPS: dict[tuple, list[tuple[int, bytes]]] = {}


def _stamp_elements(context: DeidContext, consent: ConsentStamp, implicit: bool
                    ) -> list[tuple[int, bytes]]:
    key = (context.options, consent.flag, consent.distribution_type, implicit)
    found = _STAMPS.get(key)
    if found is None:
        ds = Dataset()
        stamp(ds, context, consent)
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, implicit
        write_dataset(out, ds)
        encoded = out.getvalue()
        found = [(tag, encoded[start:end]) for tag, start, end in _split(encoded, 0, implicit)]
        if len(_STAMPS) > 64:
            _STAMPS.clear()
        _STAMPS[key] = found
    return found


def _file_meta_encoded(sop_class: object, sop_instance: object, syntax: UID) -> bytes:
    """The file meta ``deidentify`` makes, as pydicom's ``write_file_meta_info`` writes it
    (tests/datasets/test_deid_bytes.py compares the two), encoded here: it is the one
    part of every file that differs in two UIDs only."""
    elements = [b"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00\x00\x01"]
    for number, value, vr, pad in ((2, sop_class, b"UI", b"\x00"),
                                   (3, sop_instance, b"UI", b"\x00"),
                                   (0x10, syntax, b"UI", b"\x00"),
                                   (0x12, IMPLEMENTATION_CLASS_UID, b"UI", b"\x00"),
                                   (0x13, IMPLEMENTATION_VERSION, b"SH", b" ")):
        if not isinstance(value, str) or not value or not value.isascii() or "\\" in value:
            return _file_meta_by_pydicom(sop_class, sop_instance, syntax)
        encoded = value.encode("ascii")
        if len(encoded) % 2:
            encoded += pad
        elements.append(_SHORT.pack(2, number, vr, len(encoded)) + encoded)
    body = b"".join(elements)
    return _SHORT.pack(2, 0, b"UL", 4) + _LONG_LENGTH.pack(len(body)) + body


def _file_meta_by_pydicom(sop_class: object, sop_instance: object, syntax: UID) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue()


def _decoded(picked: bytes, implicit: bool) -> Dataset:
    """The picked elements as pydicom reads them in a file (read_dataset, without its
    guess at the encoding from the first element, which the walk already checked)."""
    fp = DicomBytesIO(picked)
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    elements = {e.tag: e for e in data_element_generator(fp, implicit, True)}
    ds = Dataset(elements)
    charset = elements.get(0x00080005)
    if charset is not None:
        from pydicom.charset import convert_encodings

        encoding = convert_encodings(convert_raw_data_element(charset).value)
    else:
        from pydicom.charset import default_encoding

        encoding = default_encoding
    ds.set_original_encoding(implicit, True, encoding)
    return ds


def _split(encoded: bytes, pos: int, implicit: bool) -> list[tuple[int, int, int]]:
    """(tag, start, end) of each element pydicom wrote."""
    found = []
    size = len(encoded)
    while pos < size:
        if implicit:
            group, number, length = _IMPLICIT.unpack_from(encoded, pos)
            start = pos + 8
        else:
            group, number, vr, length = _SHORT.unpack_from(encoded, pos)
            if vr in LONG_VRS:
                length = _LONG_LENGTH.unpack_from(encoded, pos + 8)[0]
                start = pos + 12
            else:
                start = pos + 8
        end = (_undefined_end(encoded, start, size, implicit) if length == UNDEFINED
               else start + length)
        found.append((group << 16 | number, pos, end))
        pos = end
    return found


def instance_path(staging: Path, study: str, series: str, instance: str) -> Path:
    """Where a de-identified instance goes (its folders made): study/series/instance.dcm,
    by its new UIDs, as both writers lay a version out."""
    target = staging / study / series / f"{instance}.dcm"
    target.parent.mkdir(parents=True, exist_ok=True)
    return target
