"""Reading DICOM headers for registration. No database, no Django: plain pydicom.

``read_header(path)`` returns a ``DicomHeader`` or raises ``DicomRejected`` with a reason a
person can act on. It reads the header and skips over bulk data without loading it, but
checks that every element the header announces is really in the file, so a truncated file
is rejected rather than registered.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pydicom
from pydicom._uid_dict import UID_dictionary
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

UNDEFINED_LENGTH = 0xFFFFFFFF
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
# Values longer than this are skipped over, not read: pixel data and other bulk data.
DEFER_SIZE = 1024
UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# The only elements registration decodes (``_header_from``). pydicom still walks every
# element's header, but seeks over the values of all others without decoding them, so the
# truncation checks below still see every announced length.
NEEDED_KEYWORDS = (
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID",
    "SeriesInstanceUID", "PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate",
    "PatientSex", "AccessionNumber", "StudyDate", "StudyDescription", "Modality",
    "BodyPartExamined", "SeriesNumber", "SeriesDescription", "InstanceNumber",
    "AnatomicRegionSequence", "ProtocolName", "BurnedInAnnotation",
)
NEEDED_TAGS = [pydicom.tag.Tag(keyword) for keyword in NEEDED_KEYWORDS]
# Read too (its header only: the value is deferred) to hold its encoding to the syntax's.
PIXEL_DATA = pydicom.tag.Tag(0x7FE00010)
# Overlay Bits Allocated, Bit Position and Data of the 16 overlay groups: an overlay stored in
# the pixel data's unused high bits (a retired encoding) is refused.
OVERLAY_GROUPS = range(0x6000, 0x6020, 2)
OVERLAY_TAGS = [pydicom.tag.Tag(group, element) for group in OVERLAY_GROUPS
                for element in (0x0100, 0x0102, 0x3000)]

# Standard transfer syntaxes newer than pydicom 3.0's dictionary (PS3.6 Table A-1). pydicom
# reads their files, but refuses to write a dataset that names one, so an export of a file
# registered in one would fail: taught to pydicom here, once, for every module that reads
# or writes DICOM. All are explicit VR little endian with encapsulated pixel data.
NEWER_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2.8.1": ("Deflated Image Frame Compression",
                              "DeflatedImageFrameCompression"),
    "1.2.840.10008.1.2.4.110": ("JPEG XL Lossless", "JPEGXLLossless"),
    "1.2.840.10008.1.2.4.111": ("JPEG XL JPEG Recompression", "JPEGXLJPEGRecompression"),
    "1.2.840.10008.1.2.4.112": ("JPEG XL", "JPEGXL"),
}


def know_newer_transfer_syntaxes() -> None:
    """Add ``NEWER_TRANSFER_SYNTAXES`` to pydicom's UID dictionary (idempotent)."""
    for uid, (name, keyword) in NEWER_TRANSFER_SYNTAXES.items():
        UID_dictionary.setdefault(uid, (name, "Transfer Syntax", "", "", keyword))


know_newer_transfer_syntaxes()


class DicomRejected(Exception):
    """The file cannot be registered; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DicomHeader:
    path: str
    size: int
    sha256: str
    transfer_syntax_uid: str
    sop_class_uid: str
    sop_uid: str
    study_uid: str
    series_uid: str
    patient_id: str
    issuer: str
    patient_name: str
    birth_date: date | None
    sex: str
    accession_number: str
    study_date: date | None
    study_description: str
    modality: str
    body_part: str
    series_number: int | None
    series_description: str
    instance_number: int | None
    # The other sources of a series' anatomy (registry/vocabulary.py reads them):
    # Anatomic Region Sequence items as (coding scheme, code value), and Protocol Name.
    anatomic_region_codes: tuple[tuple[str, str], ...] = ()
    protocol_name: str = ""
    # Burned In Annotation (YES, NO or '' when absent): exports decide safety on it.
    burned_in_annotation: str = ""


def iter_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Every file under the given files and folders, in a stable order; hidden files skipped."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(root) / name
        else:
            yield path


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def parse_date(value: object) -> date | None:
    """A DICOM DA (YYYYMMDD); None when absent or not a real date."""
    text = str(value or "").strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


INT32 = range(-(2**31), 2**31)


def parse_int(value: object) -> int | None:
    """A DICOM IS as the integer columns hold it (32 bits): None when absent, not a number,
    or beyond them (an IS has up to twelve characters)."""
    try:
        number = int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and number in INT32 else None


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    """The element's value as one string (values joined by backslashes), NULs and outer
    blanks removed; "" when absent."""
    fast = _raw_text(ds, keyword)
    if fast is not None:
        return fast
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    # NUL padding occurs in the wild and PostgreSQL cannot store it.
    return str(value).replace("\x00", "").strip()


# Decoding the few elements registration reads straight from their bytes skips pydicom's
# per-element conversion (a quarter of the reading time); anything unusual (text in a file
# that names its character set, a value pydicom already converted, bytes that are not
# ASCII where they must be, person names with component groups) goes through
# pydicom as before. tests/registry/test_dicom_refusals.py holds both ways to the same
# answers.
_TAG_OF = dict(zip(NEEDED_KEYWORDS, NEEDED_TAGS, strict=True))
_VR_OF = {tag: pydicom.datadict.dictionary_VR(tag) for tag in NEEDED_TAGS}
_ASCII_VRS = frozenset({"UI", "CS", "DA", "IS", "DS", "TM", "AS", "DT"})
_TEXT_VRS = frozenset({"LO", "SH", "PN", "ST", "LT", "UT"})
FAST_TEXT = True  # tests turn it off to compare with pydicom's own conversion


def _raw_text(ds: pydicom.Dataset, keyword: str) -> str | None:
    # Only the top-level elements registration reads are in _TAG_OF; sequence items (which
    # take their character set from the parent) always go through pydicom.
    tag = _TAG_OF.get(keyword)
    if tag is None or not FAST_TEXT:
        return None
    element = ds.get_item(tag)
    if element is None:
        return ""
    if not isinstance(element, pydicom.dataelem.RawDataElement) or element.value is None:
        return None
    vr = element.VR or _VR_OF[tag]
    if vr in _ASCII_VRS:
        encoding = "ascii"
    elif vr in _TEXT_VRS:
        if 0x00080005 in ds:
            # pydicom converted Specific Character Set as it read the file and decodes text
            # by it, whatever it names: that text is pydicom's to decode.
            return None
        encoding = "latin-1"  # the default repertoire, decoded as pydicom does
    else:
        return None
    try:
        text = element.value.decode(encoding)
    except UnicodeDecodeError:
        return None
    if vr == "PN" and "=" in text:
        return None  # component groups: pydicom drops the empty ones ('Wang^XiaoDong=王^小東=')
    if vr in ("ST", "LT", "UT"):  # single-valued: a backslash is text, not a separator
        return text.replace("\x00", "").strip()
    return "\\".join(part.replace("\x00", "").strip()
                      for part in text.split("\\")).strip()


def _uid(ds: pydicom.Dataset, keyword: str) -> str:
    value = _text(ds, keyword)
    if not value:
        raise DicomRejected(f"no {keyword}")
    if len(value) > 64 or not UID_PATTERN.match(value):
        raise DicomRejected(f"{keyword} is not a valid UID: {value[:80]!r}")
    return value


class _SeekWatchingReader(io.BufferedReader):
    """Remembers the furthest offset the parser skipped to.

    pydicom skips over bulk data with ``seek``, and seeking past the end is not an error, so
    this is how a file cut short inside its pixel data is noticed. Only ``seek`` is wrapped:
    reads stay native and fast."""

    furthest = 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = super().seek(offset, whence)
        if position > self.furthest:
            self.furthest = position
        return position


def _check_complete(ds: pydicom.Dataset, size: int) -> None:
    """Every value the header announces must lie inside the file."""
    meta = getattr(ds, "file_meta", None) or pydicom.Dataset()
    if meta.get("TransferSyntaxUID") == pydicom.uid.DeflatedExplicitVRLittleEndian:
        # Offsets count in the inflated stream, not in the file; zlib refuses a cut one.
        return
    for tag in ds.keys():  # noqa: SIM118 - a Dataset iterated converts each element
        # Deferred values stay unread: the pixel data's header is all this needs.
        element = ds.get_item(tag, keep_deferred=True)
        length = getattr(element, "length", None)
        tell = getattr(element, "value_tell", None)
        if length is None or tell is None or length == UNDEFINED_LENGTH:
            continue
        if tell + length > size:
            raise DicomRejected(
                f"truncated: element {element.tag} needs {length} bytes at offset {tell}, "
                f"but the file ends at {size}"
            )


def read_header(path: str | os.PathLike, *, default_issuer: str = "LOCAL") -> DicomHeader:
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise DicomRejected(f"cannot read the file: {exc.strerror}") from exc
    if size == 0:
        raise DicomRejected("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _SeekWatchingReader(io.FileIO(path, "r")) as handle:
                ds = pydicom.dcmread(handle, defer_size=DEFER_SIZE,
                                     specific_tags=[*NEEDED_TAGS, PIXEL_DATA,
                                                    *OVERLAY_TAGS])
                ended_at = handle.tell()
            if handle.furthest > size:
                raise DicomRejected(
                    f"truncated: the header announces {handle.furthest} bytes but the file "
                    f"has {size}"
                )
            if ended_at < size:
                # pydicom ends a dataset at an Item Delimitation Item where no item is open,
                # without a word: the elements after it (the pixel data among them) would be
                # registered as if absent, and an export would write the file without them.
                raise DicomRejected(
                    f"the dataset ends at byte {ended_at} of {size}: what follows cannot be "
                    "read (an item delimiter out of place, or a damaged element)"
                )
            _check_complete(ds, size)
            header = _header_from(ds, path, size, default_issuer)
            _check_transfer_syntax(ds)
            _check_overlays(ds)
    except DicomRejected:
        raise
    except InvalidDicomError as exc:
        raise DicomRejected("not a DICOM file (no DICOM Part 10 header)") from exc
    except (OSError, EOFError) as exc:
        raise DicomRejected(f"cannot read the file: {exc}") from exc
    except Exception as exc:  # pydicom raises many kinds on malformed data
        raise DicomRejected(f"malformed DICOM: {type(exc).__name__}: {exc}"[:300]) from exc
    return header


def _check_transfer_syntax(ds: pydicom.Dataset) -> None:
    """The file must name a transfer syntax that can be written again: an export keeps it
    (the pixels are copied as they are), and without one nobody knows how the pixel data
    is encoded. pydicom reads on by guessing; registration does not guess."""
    meta = getattr(ds, "file_meta", None) or pydicom.Dataset()
    syntax = str(meta.get("TransferSyntaxUID", "") or "").replace("\x00", "").strip()
    if not syntax:
        raise DicomRejected("no Transfer Syntax UID in the file meta information")
    if not UID(syntax).is_transfer_syntax:
        raise DicomRejected(f"unsupported transfer syntax {syntax[:64]!r} (private or "
                            "unknown: its pixel data cannot be interpreted)")
    pixels = ds.get_item(PIXEL_DATA, keep_deferred=True)  # its header, not its value
    if (pixels is not None and getattr(pixels, "length", 0) == UNDEFINED_LENGTH
            and not UID(syntax).is_encapsulated):
        # Compressed pixels labelled as native (fo-dicom's GH1376.dcm): no reader can decode
        # them as labelled, and an export would pass the contradiction on.
        raise DicomRejected(f"the pixel data is encapsulated (compressed), but the transfer "
                            f"syntax {syntax[:64]!r} says it is not")


def _check_overlays(ds: pydicom.Dataset) -> None:
    """An overlay kept in the pixel data's unused bits (Overlay Bit Position above 0, no
    Overlay Data of its own) is part of the pixels: de-identification removes the overlay
    group, but its graphics and text would stay in every exported pixel value (dcm4che's
    ovly_p01.dcm carries two such planes)."""
    for group in OVERLAY_GROUPS:
        if ds.get_item((group, 0x3000), keep_deferred=True) is not None:
            continue  # in Overlay Data: removed with its group
        position = ds.get((group, 0x0102))
        allocated = ds.get((group, 0x0100))
        position = parse_int(position.value) if position is not None else None
        allocated = parse_int(allocated.value) if allocated is not None else None
        if (position or 0) > 0 or (allocated or 1) > 1:
            raise DicomRejected(
                f"an overlay (group {group:04X}) is stored in the pixel data's unused bits: "
                "de-identification cannot remove it without rewriting the pixels")


def _header_from(ds: pydicom.Dataset, path: str, size: int, default_issuer: str
                 ) -> DicomHeader:
    return header_from_dataset(ds, path=path, size=size, sha256=file_sha256(path),
                               default_issuer=default_issuer)


def header_from_dataset(ds: pydicom.Dataset, *, path: str, size: int, sha256: str,
                        default_issuer: str) -> DicomHeader:
    """The header of an already-read dataset: a file's, or a PACS's metadata (DICOMweb),
    whose ``path`` is then its PACS location and whose size and sha256 are unknown."""
    meta = getattr(ds, "file_meta", None) or pydicom.Dataset()
    if str(meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY:
        raise DicomRejected("a DICOMDIR (media directory), not an image")
    sop_uid = _uid(ds, "SOPInstanceUID")
    study_uid = _uid(ds, "StudyInstanceUID")
    series_uid = _uid(ds, "SeriesInstanceUID")
    patient_id = _text(ds, "PatientID")
    if not patient_id:
        raise DicomRejected("no PatientID")
    if len(patient_id) > 64:
        raise DicomRejected("PatientID is longer than 64 characters")
    # A file whose dataset lacks SOP Class UID still names it in its file meta.
    sop_class_uid = (_text(ds, "SOPClassUID")
                     or str(meta.get("MediaStorageSOPClassUID", "") or "").strip("\x00 "))
    if not sop_class_uid:
        raise DicomRejected("no SOPClassUID")
    sex = _text(ds, "PatientSex").upper()[:1]
    return DicomHeader(
        path=path,
        size=size,
        sha256=sha256,
        transfer_syntax_uid=str(meta.get("TransferSyntaxUID", ""))[:64],
        sop_class_uid=sop_class_uid[:64],
        sop_uid=sop_uid,
        study_uid=study_uid,
        series_uid=series_uid,
        patient_id=patient_id,
        issuer=_text(ds, "IssuerOfPatientID")[:64] or default_issuer,
        patient_name=_text(ds, "PatientName")[:200],
        birth_date=parse_date(_text(ds, "PatientBirthDate")),
        sex=sex if sex in {"F", "M", "O"} else "",
        accession_number=_text(ds, "AccessionNumber")[:64],
        study_date=parse_date(_text(ds, "StudyDate")),
        study_description=_text(ds, "StudyDescription")[:255],
        modality=_text(ds, "Modality").upper()[:16],
        body_part=_text(ds, "BodyPartExamined").upper()[:64],
        series_number=parse_int(_text(ds, "SeriesNumber")),
        series_description=_text(ds, "SeriesDescription")[:255],
        instance_number=parse_int(_text(ds, "InstanceNumber")),
        anatomic_region_codes=_region_codes(ds),
        protocol_name=_text(ds, "ProtocolName")[:255],
        burned_in_annotation=_text(ds, "BurnedInAnnotation").upper()[:3],
    )


def _region_codes(ds: pydicom.Dataset) -> tuple[tuple[str, str], ...]:
    """Anatomic Region Sequence items (scheme, value); items without a value are skipped."""
    found = []
    for item in ds.get("AnatomicRegionSequence") or ():
        value = _text(item, "CodeValue") or _text(item, "LongCodeValue")
        if value:
            found.append((_text(item, "CodingSchemeDesignator"), value[:64]))
    return tuple(found)
