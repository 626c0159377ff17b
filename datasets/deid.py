"""De-identification by DICOM PS3.15 Annex E, table-driven (revision 2024e).

The attribute list and its actions are data (``datasets/data/ps3.15-table-e1-1.json``, Table
E.1-1); this module only says what each action does and how the options change it. No
request, no database: a dataset in, a de-identified dataset out.

Actions: D replace with a dummy value, Z make empty, X remove, K keep, C clean, U replace a
UID with a keyed, consistent one. Where the table offers a choice that depends on the IOD
(X/Z, Z/D, X/D, X/Z/D, X/Z/U*), which we cannot know for every object, the conservative
resolution keeps the attribute present but carries nothing: Z/D and X/D and X/Z/D → D
(a dummy value keeps type 1 attributes valid), X/Z → Z, X/Z/U* → U.

Options (the dataset chooses): Retain Longitudinal Temporal Information with Modified Dates
(dates shifted by one offset per patient per dataset, so intervals are kept), Retain Patient
Characteristics, Retain Device Identity, Clean Descriptors (free text kept with every known
identifier of the patient removed). Every private attribute is removed unless whitelisted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache, lru_cache
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from registry.dicom import know_newer_transfer_syntaxes

# An export keeps the source's transfer syntax: pydicom must know the newer ones to write it.
know_newer_transfer_syntaxes()

TABLE_PATH = Path(__file__).parent / "data" / "ps3.15-table-e1-1.json"
STANDARD_REVISION = "2024e"
# Our implementation's UID (a 2.25 UUID-derived UID) for the file meta.
IMPLEMENTATION_CLASS_UID = "2.25.160386154862446410227574218016563521981"
IMPLEMENTATION_VERSION = "CONSENTRY_1"

DCM = "DCM"
BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")


class Option:
    """Profile options (PS3.15 E.3) with their CID 7050 codes and Table E.1-1 columns."""

    MODIFIED_DATES = "modified-dates"
    PATIENT_CHARACTERISTICS = "patient-characteristics"
    DEVICE_IDENTITY = "device-identity"
    CLEAN_DESCRIPTORS = "clean-descriptors"

    COLUMNS = {MODIFIED_DATES: "rtnLongModifDatesOpt",
               PATIENT_CHARACTERISTICS: "rtnPatCharsOpt",
               DEVICE_IDENTITY: "rtnDevIdOpt",
               CLEAN_DESCRIPTORS: "cleanDescOpt"}
    CODES = {MODIFIED_DATES: ("113107", "Retain Longitudinal Temporal Information Modified "
                                        "Dates Option"),
             PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
             DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
             CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option")}
    ALL = tuple(COLUMNS)


CONSERVATIVE = {"Z/D": "D", "X/D": "D", "X/Z/D": "D", "X/Z": "Z", "X/Z/U*": "U"}


@dataclass(frozen=True)
class Rule:
    name: str
    action: str


# Identifying attributes the parsed table has no row for, each removed (X): a birth or death
# date written in another calendar, and the qualifiers and issuers of identifiers the table
# removes or empties (Issuer of Patient ID, Accession Number, the order numbers).
SUPPLEMENT = {
    0x00100033: "Patient's Birth Date in Alternative Calendar",
    0x00100034: "Patient's Death Date in Alternative Calendar",
    0x00100035: "Patient's Alternative Calendar",
    0x00100024: "Issuer of Patient ID Qualifiers Sequence",
    0x00080051: "Issuer of Accession Number Sequence",
    0x00400026: "Order Placer Identifier Sequence",
    0x00400027: "Order Filler Identifier Sequence",
}


@cache
def _table() -> tuple[dict[int, dict], list[tuple[re.Pattern, dict]]]:
    exact: dict[int, dict] = {}
    patterns: list[tuple[re.Pattern, dict]] = []
    for row in json.loads(TABLE_PATH.read_text()):
        tag_id = row["id"].lower()
        if not re.fullmatch(r"[0-9a-fx]{8}", tag_id):
            continue  # "private attributes (odd groups)": handled as the private rule
        if "x" in tag_id:
            patterns.append((re.compile("^" + tag_id.replace("x", "[0-9a-f]") + "$"), row))
        else:
            exact[int(tag_id, 16)] = row
    for tag, name in SUPPLEMENT.items():
        exact.setdefault(tag, {"name": name, "basicProfile": "X"})
    return exact, patterns


def rule_for(tag: int, options: Iterable[str]) -> Rule | None:
    """The action for a public tag under the chosen options; None if the table is silent."""
    if isinstance(options, frozenset):
        return _rule_cached(tag, options)  # every file of an export asks the same questions
    return _rule(tag, options)


@lru_cache(maxsize=16384)
def _rule_cached(tag: int, options: frozenset[str]) -> Rule | None:
    return _rule(tag, options)


def _rule(tag: int, options: Iterable[str]) -> Rule | None:
    exact, patterns = _table()
    row = exact.get(tag)
    if row is None:
        text = f"{tag:08x}"
        row = next((r for pattern, r in patterns if pattern.match(text)), None)
    if row is None:
        return None
    action = row["basicProfile"]
    for option in options:
        column = Option.COLUMNS[option]
        if column in row:
            action = row[column]
    return Rule(row["name"], CONSERVATIVE.get(action, action))


@dataclass
class DeidContext:
    """Everything that must stay the same across a dataset: its secret, its options."""

    secret: bytes
    options: frozenset[str] = frozenset()
    private_whitelist: frozenset[int] = frozenset()
    # Filled per file by ``deidentify``: what the cleaning must remove, the date offset.
    identifiers: list[str] = field(default_factory=list)
    day_offset: int = 0

    def remap_uid(self, uid: str) -> str:
        """A UID under 2.25 derived from the original with this dataset's secret: the same
        original always gives the same UID here, and nobody without the secret can go back."""
        digest = hmac.new(self.secret, f"uid:{uid}".encode(), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"

    def pseudonym(self, issuer: str, patient_id: str) -> str:
        digest = hmac.new(self.secret, f"patient:{issuer}|{patient_id}".encode(),
                          hashlib.sha256).hexdigest()
        return f"ANON-{digest[:16].upper()}"

    def offset_for(self, issuer: str, patient_id: str) -> int:
        """One shift per patient per dataset, between 1 and 3,650 days back."""
        digest = hmac.new(self.secret, f"dates:{issuer}|{patient_id}".encode(),
                          hashlib.sha256).digest()
        return -(1 + int.from_bytes(digest[:4], "big") % 3650)


@dataclass(frozen=True)
class ConsentStamp:
    """What goes into Consent for Distribution Flag (0012,0085) and Distribution Type."""

    flag: str  # YES | NO | WITHDRAWN
    distribution_type: str = "RESTRICTED_REUSE"


DUMMIES: dict[str, Callable[[], object]] = {
    "DA": lambda: "19000101", "DT": lambda: "19000101000000", "TM": lambda: "000000",
    "PN": lambda: "ANONYMOUS", "LO": lambda: "ANONYMOUS", "SH": lambda: "ANON",
    # D is a non-empty value: a type 1 text keeps a value, and carries nothing.
    "CS": lambda: "ANON", "LT": lambda: "REMOVED", "ST": lambda: "REMOVED",
    "UT": lambda: "REMOVED",
    "AS": lambda: "000Y", "DS": lambda: "0", "IS": lambda: "0", "UI": lambda: "2.25.0",
    "AE": lambda: "ANON", "UC": lambda: "REMOVED", "UR": lambda: "", "US": lambda: 0,
    "SS": lambda: 0, "UL": lambda: 0, "SL": lambda: 0, "FL": lambda: 0.0, "FD": lambda: 0.0,
}


def deidentify(ds: Dataset, context: DeidContext, *, consent: ConsentStamp) -> Dataset:
    """De-identify ``ds`` in place and return it, with fresh file meta and a clean preamble.

    The caller keeps the original identity (issuer, patient id) to pseudonym mapping, which
    is the re-identification key and never leaves the registry."""
    deidentify_elements(ds, context)
    stamp(ds, context, consent)
    source_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID") or source_meta.get(
        "MediaStorageSOPClassUID")
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = source_meta.get("TransferSyntaxUID") or _syntax_read_as(ds)
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    _decode_if_reencoded(ds, meta.TransferSyntaxUID)
    return ds


def deidentify_elements(ds: Dataset, context: DeidContext) -> None:
    """The part of ``deidentify`` that depends on the file: the profile applied to every
    element, the patient's pseudonym in place of their identity."""
    issuer = str(ds.get("IssuerOfPatientID", "") or "")
    patient_id = str(ds.get("PatientID", "") or "")
    context.identifiers = _identifiers_of(ds)
    context.day_offset = context.offset_for(issuer, patient_id)
    pseudonym = context.pseudonym(issuer, patient_id)

    _apply(ds, context)

    ds.PatientID = pseudonym
    ds.PatientName = pseudonym


def stamp(ds: Dataset, context: DeidContext, consent: ConsentStamp) -> None:
    """The part that is the same for every file of an export: how it was de-identified, and
    the consent it goes out under (``STAMP_TAGS``)."""
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if Option.MODIFIED_DATES in context.options else "REMOVED")
    ds.DeidentificationMethod = f"Consentry, DICOM PS3.15 {STANDARD_REVISION} Basic Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([
        _code(*BASIC_PROFILE),
        *[_code(*Option.CODES[o]) for o in Option.ALL if o in context.options]])
    ds.add_new(0x00120085, "CS", consent.flag)
    ds.add_new(0x00120084, "CS", consent.distribution_type)


def _decode_if_reencoded(ds: Dataset, syntax: str) -> None:
    """A body read in another encoding than its meta names (a writer that labelled an
    implicit VR body explicit) is written as the meta says; pydicom writes an element it
    has not decoded as it was read, and one read without a VR has none to write (the
    export failed with TypeError). So every element is decoded first, in that case only."""
    syntax = pydicom.uid.UID(syntax)
    if not syntax.is_transfer_syntax or syntax.is_implicit_VR:
        return
    # pydicom's original_encoding names the meta's syntax, not the one it found: the raw
    # elements say how they were read.
    if any(isinstance(e, RawDataElement) and e.is_implicit_VR for e in ds.elements()):
        for _ in ds.iterall():
            pass  # iterating converts each raw element in place


def _syntax_read_as(ds: Dataset) -> str:
    """The uncompressed transfer syntax pydicom read a file without one in its meta as."""
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit:
        return pydicom.uid.ImplicitVRLittleEndian
    return pydicom.uid.ExplicitVRBigEndian if little is False else \
        pydicom.uid.ExplicitVRLittleEndian


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = DCM
    item.CodeMeaning = meaning
    return item


# Sequences whose items are references to other objects: their items are kept with every UID
# remapped by the same keyed mapping, so a segmentation still points at its source image and
# a derived image at its original (the profile's X/Z/U*, and the conservative resolution of
# X/Z and X/Z/D, would otherwise empty them).
REFERENCE_SEQUENCES = frozenset({
    0x00081140,  # Referenced Image Sequence (X/Z/U*)
    0x00082112,  # Source Image Sequence (X/Z/U*)
    0x00081110,  # Referenced Study Sequence (X/Z)
    0x00081111,  # Referenced Performed Procedure Step Sequence (X/Z/D)
})


def _apply(ds: Dataset, context: DeidContext, *, strict: bool = False) -> None:
    """``strict`` inside a sequence the profile says to replace with a dummy (D): there a
    text the table does not name is replaced too, since it may be the person's identity."""
    for tag in list(ds.keys()):
        if tag.is_private:
            if int(tag) not in context.private_whitelist:
                del ds[tag]
            continue
        if tag.group in NOT_DATASET_GROUPS or tag.element == 0:
            # Command and file meta elements have no place in a stored dataset's body (the
            # meta is rebuilt; writing group 2 here fails), stray item and delimiter tags
            # are debris of a broken encoding that no writer accepts, and group lengths
            # are stale once anything in their group goes.
            del ds[tag]
            continue
        if tag.group & 0xFF01 in (0x5000, 0x6000):
            # Curves and overlays go whole: Overlay Data alone removed leaves a group that
            # describes pixels it no longer has, which validators rightly refuse.
            del ds[tag]
            continue
        vr = _vr_of(ds, tag)
        rule = rule_for(int(tag), context.options)
        if rule is None:
            rule = _silent_rule(ds, tag, vr, context.options)
        kept = (rule is not None and rule.action == "K") or (rule is None and not strict)
        if kept and vr != "SQ":
            # Kept as read: an element the profile keeps is never decoded (most of a
            # header), which is what makes an export run near copy speed.
            continue
        element = ds[tag]
        if element.VR == "UN":
            del ds[tag]  # a public value that stays unreadable cannot be vouched for
            continue
        if element.VR == "SQ":
            action = rule.action if rule else "K"
            if int(tag) in REFERENCE_SEQUENCES and action in ("U", "Z", "D"):
                action = "U"
            if action in ("K", "C", "U", "D"):
                # Items kept, each de-identified by the same profile.
                for item in element.value:
                    _apply(item, context, strict=strict or action == "D")
                continue
            _act(ds, tag, element, action, context)
            continue
        if rule is None or rule.action == "K":
            if strict and rule is None and element.VR in TEXT_VRS:
                element.value = DUMMIES[element.VR]()
            continue
        _act(ds, tag, element, rule.action, context)


NOT_DATASET_GROUPS = frozenset({0x0000, 0x0002, 0xFFFE})
# What an attribute the table does not name may carry that _silent_rule changes.
SILENT_VRS = frozenset({"PN", "DA", "DT", "UI", "UN", "NONE"})

# UIDs the table does not name that identify a kind of thing (a SOP class, a transfer
# syntax, a terminology), never an instance or a person: kept as they are.
_CLASS_UID_WORDS = ("SOPClass", "TransferSyntax")
_CLASS_UID_KEYWORDS = frozenset({
    "ImplementationClassUID", "PrivateInformationCreatorUID", "CodingSchemeUID",
    "ContextGroupExtensionCreatorUID", "ContextUID", "MappingResourceUID",
    "CreatorVersionUID", "SegmentationTemplateUID", "TemplateExtensionCreatorUID",
})
WELL_KNOWN_UID_ROOT = "1.2.840.10008."


def _silent_rule(ds: Dataset, tag: BaseTag, vr: str | None,
                 options: Iterable[str]) -> Rule | None:
    """What to do with a public attribute the table does not name (a retired one, one
    newer than the table, one the dictionary does not know), by what its VR can carry:
    Annex E lists attributes, but an instance UID, a person's name or a date is an
    identifier wherever it is. None: kept (or, in a replaced sequence, text replaced)."""
    if vr is None or vr == "UN":
        # Not in the dictionary and stored without a VR we can read: nobody can say what
        # it holds, so it cannot be passed on.
        return Rule("unknown attribute", "X")
    if vr == "PN":
        return Rule("person name", "D")
    if vr in ("DA", "DT"):
        return Rule("date", "C" if Option.MODIFIED_DATES in set(options) else "D")
    if vr == "UI":
        keyword = pydicom.datadict.keyword_for_tag(tag)
        if keyword in _CLASS_UID_KEYWORDS or any(w in keyword for w in _CLASS_UID_WORDS):
            return None
        values = _values(ds[tag].value)
        if values and all(v.startswith(WELL_KNOWN_UID_ROOT) for v in values):
            return None  # a UID of the standard's own names nobody
        return Rule("instance UID", "U")
    return None


def _values(value) -> list[str]:
    if isinstance(value, list | pydicom.multival.MultiValue):
        return [str(v) for v in value if v]
    return [str(value)] if value else []


def _vr_of(ds: Dataset, tag: BaseTag) -> str | None:
    """The element's VR without decoding its value (implicit VR files: the dictionary's).
    A public element stored as UN (sent on by a system that did not know it) has its
    dictionary VR: pydicom reads it as that, and a sequence stored as UN must be entered."""
    raw = ds.get_item(tag)
    if raw is not None and raw.VR and raw.VR != "UN":
        return raw.VR
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        vr = None
    if vr is None or vr in ("NONE", "UN"):
        return raw.VR if raw is not None and raw.VR else None
    # pydicom gives a VR list such as "US or SS" for a few tags: both are numbers.
    return vr.split(" or ")[0]


TEXT_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC"})


def _act(ds: Dataset, tag: BaseTag, element, action: str, context: DeidContext) -> None:
    if action == "X":
        del ds[tag]
    elif element.VR == "SQ":
        element.value = Sequence()  # Z on a sequence: present, with no items
    elif action == "Z":
        element.value = None  # present, zero length
    elif action == "D":
        element.value = DUMMIES.get(element.VR, lambda: None)()
    elif action == "U":
        element.value = _map_values(element.value, context.remap_uid)
    else:  # C, the one action left: the table's K never reaches here (_apply keeps it)
        _clean(element, context)


def _map_values(value, function):
    if isinstance(value, list | pydicom.multival.MultiValue):
        return [function(str(v)) for v in value if v]
    return function(str(value)) if value else value


def _clean(element, context: DeidContext) -> None:
    if element.VR in ("DA", "DT"):
        element.value = _map_values(element.value, lambda v: _shift(v, context.day_offset))
    elif element.VR == "TM":
        return  # times of day are kept: only the day moves
    elif element.VR in ("LO", "SH", "LT", "ST", "UT", "UC", "PN"):
        element.value = _map_values(element.value, lambda v: _scrub(v, context.identifiers))
    else:
        element.value = None


def _shift(value: str, days: int) -> str:
    text = value.strip()
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except (ValueError, IndexError):
        return ""
    shifted = (day + timedelta(days=days)).strftime("%Y%m%d")
    return shifted + text[8:] if len(text) > 8 else shifted


# Clean Descriptors: what free text must lose besides the patient's own identifiers. Each
# pattern says what it removes; order matters (labelled values before bare numbers).
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
DESCRIPTOR_PATTERNS = [
    # A label that announces an identifier or a date, with its value: "DOB 11/07/1961",
    # "mrn demo-00003", "tel: 555-0199", "Acc# 12345", "NHS no 943 476 5919".
    re.compile(r"\b(?:dob|d\.o\.b\.?|born|birth\s*date|mrn|mr\s*no|patient\s*id|pid|id|"
               r"acc(?:ession)?|acc#|nhs(?:\s*no)?|ssn|tel|phone|mob(?:ile)?|fax|email)"
               r"\s*(?:no\.?|number|#)?\s*[:#=]?\s*[\w./@+()-]*\d[\w./@+()-]*(?:\s\d[\d-]*)*",
               re.IGNORECASE),
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),  # email addresses
    # Dates with a day or a month: 11/07/1961, 1961-07-11, 11.07.61, 07/1961, 19610711,
    # "11 Jul 1961", "July 11, 1961". A year alone stays.
    re.compile(r"\b\d{1,4}[/.-]\d{1,2}(?:[/.-]\d{2,4})?\b"),
    re.compile(r"\b\d{1,2}[/.-](?:19|20)\d{2}\b"),
    re.compile(r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b"),
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\s*,?\s*(?:\d{{2,4}})?\b",
               re.IGNORECASE),
    re.compile(rf"\b{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s*(?:\d{{2,4}})?\b",
               re.IGNORECASE),
    # Phone numbers and other long numbers: seven or more digits, separators allowed.
    re.compile(r"\+?\(?\d[\d ().-]{5,}\d"),
]


_DANGLING_LABEL = re.compile(
    r"\b(?:dob|born|birth\s*date|mrn|patient\s*id|acc(?:ession)?|tel|phone|email)\b"
    r"\s*[:#=]?(?=\s*(?:[,;:]|$))", re.IGNORECASE)


@lru_cache(maxsize=256)
def _loose_patterns(identifiers: tuple[str, ...]) -> tuple[re.Pattern, ...]:
    """The patient's own identifiers as written anywhere: any case, with or without the
    separators people add ("DEMO00003", "demo-00003", "Demo 00003"). Built once per
    patient: every text element of every file of theirs is scrubbed with them."""
    found = []
    for identifier in identifiers:
        loose = "[-_. ]?".join(re.escape(c) for c in identifier if c.isalnum())
        if loose:
            found.append(re.compile(loose, re.IGNORECASE))
    return tuple(found)


def _scrub(text: str, identifiers: list[str]) -> str:
    for pattern in DESCRIPTOR_PATTERNS:
        text = pattern.sub("", text)
    for loose in _loose_patterns(tuple(identifiers)):
        text = loose.sub("", text)
    # A label whose value went ("born", "mrn:") says nothing any more, nor do the
    # delimiters of a person name whose components went ("^=^").
    text = _DANGLING_LABEL.sub("", text)
    text = re.sub(r"(?<!\S)[\^=]+(?!\S)", "", text)
    text = re.sub(r"\s+([,;:])", r"\1", " ".join(text.split()))
    return re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text).strip(" ,;:-")


def _identifiers_of(ds: Dataset) -> list[str]:
    """Strings that identify this patient, for Clean Descriptors: name parts, ids, dates."""
    found: set[str] = set()
    name = str(ds.get("PatientName", "") or "")
    # A one-letter component is a name too where the letter is a syllable or a word: a
    # Chinese or Korean family name (王, 洪, 홍) is one character.
    found.update(p for p in re.split(r"[\^= ]", name)
                 if len(p) >= 2 or (p and not p.isascii() and p.isalpha()))
    for keyword in IDENTITY_KEYWORDS:
        value = ds.get(keyword)
        values = value if isinstance(value, list | pydicom.multival.MultiValue) else [value]
        found.update(str(v) for v in values if v and len(str(v)) >= 2)
    return sorted(found, key=len, reverse=True)



# What ``deidentify`` reads besides the elements it de-identifies: the patient's identity
# (pseudonym, date offset, Clean Descriptors), and the UIDs the file meta and the file's
# place take; and what it writes. A byte-level writer must hand all of these to it.
IDENTITY_KEYWORDS = ("PatientID", "AccessionNumber", "OtherPatientIDs", "PatientBirthDate",
                     "StudyDate", "InstitutionName", "ReferringPhysicianName", "StudyID")
HEADER_KEYWORDS = (
    *IDENTITY_KEYWORDS, "PatientName", "IssuerOfPatientID", "SpecificCharacterSet",
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "PatientIdentityRemoved", "LongitudinalTemporalInformationModified",
    "DeidentificationMethod", "DeidentificationMethodCodeSequence")
HEADER_TAGS = frozenset({*(tag_for_keyword(k) for k in HEADER_KEYWORDS),
                         0x00120085, 0x00120084})
STAMP_TAGS = frozenset({0x00120062, 0x00280303, 0x00120063, 0x00120064, 0x00120085,
                        0x00120084})

DROP, COPY, DECODE = 0, 1, 2


def element_fate(tag: int, vr: str | None, undefined: bool, options: frozenset[str],
                 private_whitelist: frozenset[int]) -> int:
    """What ``_apply`` does with a top-level element, known from its tag and VR alone
    (None in an implicit VR file: the dictionary's): DROP it, COPY it as read (kept, never
    decoded), or DECODE it (``_apply`` must decide or change its value, or ``deidentify``
    reads or writes it). Group lengths are dropped: pydicom never writes them."""
    group = tag >> 16
    if tag & 0xFFFF == 0 or group in NOT_DATASET_GROUPS:
        return DROP  # group lengths, and command or file meta elements in the body (_apply)
    if tag in HEADER_TAGS:
        return DECODE
    if group & 1:
        # _apply keeps a whitelisted private element unread, whatever its length.
        return COPY if tag in private_whitelist else DROP
    if group & 0xFF01 in (0x5000, 0x6000):
        return DROP
    if undefined or vr == "UN":
        # A sequence, or a value sent on by a system that did not know it: pydicom reads it
        # as its dictionary VR and _apply enters or judges it.
        return DECODE
    rule = rule_for(tag, options)
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = None
    if rule is None and (vr is None or vr.split(" or ")[0] in SILENT_VRS):
        return DECODE  # no row in the table: _silent_rule judges it by what it can carry
    if rule is not None and rule.action != "K":
        # Cleaning keeps a time of day as it is (``_clean``): nothing to decode.
        return COPY if rule.action == "C" and vr == "TM" else DECODE
    return DECODE if vr == "SQ" else COPY
