"""The scan-kind and anatomy vocabularies, as data (``registry/data/``, with provenance).

Two questions are answered here and nowhere else:

- what a person's words mean: ``canonical_modality("MRI") == "MR"``,
  ``canonical_region("head") == "HEAD"``; anything outside the vocabulary raises
  ``UnknownTerm`` with the nearest known terms;
- what a series shows: ``anatomy_of(...)`` reads Body Part Examined, else Anatomic Region
  Sequence codes, else whole words of the descriptions and protocol name, else says
  "unknown"; the answer names the regions (``REGIONS``) the anatomy lies in.

Plain Python, no Django: the registry stores the answers, consent matches scopes on them.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


class AnatomySource:
    TAG = "tag"
    CODE = "code"
    DESCRIPTION = "description"
    UNKNOWN = "unknown"

    choices = [(TAG, "Body Part Examined"), (CODE, "anatomic region code"),
               (DESCRIPTION, "description or protocol name"), (UNKNOWN, "not recorded")]


class UnknownTerm(ValueError):
    """Not in the vocabulary; ``suggestions`` are the nearest known (code, label) pairs."""

    def __init__(self, message: str, suggestions: list[tuple[str, str]]):
        hint = ("; did you mean " + " or ".join(f"{code} ({label})"
                                                for code, label in suggestions) + "?"
                if suggestions else "")
        super().__init__(message + hint)
        self.suggestions = suggestions


@dataclass(frozen=True)
class Anatomy:
    parts: tuple[str, ...]    # defined terms (or code meanings) that were read
    source: str               # an AnatomySource
    regions: tuple[str, ...]  # region codes, in REGIONS order; empty when unknown

    @property
    def stored_regions(self) -> str:
        """'|HEAD|NECK|': delimited on both sides so SQL can test one region with LIKE."""
        return "|" + "|".join(self.regions) + "|" if self.regions else ""

    @property
    def label(self) -> str:
        return "\\".join(self.parts)[:64]


UNKNOWN = Anatomy(parts=(), source=AnatomySource.UNKNOWN, regions=())


# --- the data ----------------------------------------------------------------------------

@cache
def _modality_data() -> dict:
    return json.loads((DATA / "modalities.json").read_text())


@cache
def _anatomy_data() -> dict:
    return json.loads((DATA / "anatomy.json").read_text())


@cache
def modalities() -> dict[str, str]:
    """Modality code -> plain label, groups (XRAY) included."""
    data = _modality_data()
    found = {m["code"]: m["label"] for m in data["modalities"]}
    found.update({g["code"]: g["label"] for g in data["groups"]})
    return found


@cache
def modality_groups() -> dict[str, tuple[str, ...]]:
    """A group code -> the modality codes it covers (XRAY -> CR, DX, RG)."""
    return {g["code"]: tuple(g["covers"]) for g in _modality_data()["groups"]}


def modality_covers(code: str) -> tuple[str, ...]:
    return modality_groups().get(code, (code,))


@cache
def regions() -> dict[str, str]:
    """Region code -> the words a person would use, in the order they are offered."""
    return {r["code"]: r["label"] for r in _anatomy_data()["regions"]}


@cache
def _parts_by_term() -> dict[str, tuple[str, ...]]:
    return {p["term"]: tuple(p["regions"]) for p in _anatomy_data()["parts"] if p["term"]}


@cache
def _parts_by_code() -> dict[str, tuple[str, tuple[str, ...]]]:
    """SNOMED CT id and legacy SNOMED-RT id -> (term or meaning, regions)."""
    found = {}
    for part in _anatomy_data()["parts"]:
        name = part["term"] or part["code"]["meaning"].upper()
        found[part["code"]["value"]] = (name, tuple(part["regions"]))
        if part["code"]["srt"]:
            found[part["code"]["srt"]] = (name, tuple(part["regions"]))
    return found


@cache
def _keywords() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Whole words read in descriptions -> (defined term or meaning, regions)."""
    by_term = _parts_by_term()
    by_keyword = {p["code"]["meaning"].replace(" ", ""): p for p in _anatomy_data()["parts"]}
    found = {term: (term, found_regions) for term, found_regions in by_term.items()}
    for word, target in _anatomy_data()["keywords"].items():
        if target in by_term:
            found[word] = (target, by_term[target])
        else:  # a concept without a defined term, named by its pydicom keyword
            part = next(p for key, p in by_keyword.items() if key.lower() == target.lower())
            found[word] = (part["code"]["meaning"].upper(), tuple(part["regions"]))
    return found


def region_label(code: str) -> str:
    return regions().get(code, code.lower())


def modality_label(code: str) -> str:
    return modalities().get(code, code)


def regions_of_term(term: str) -> tuple[str, ...]:
    """The regions a Body Part Examined defined term lies in; () when not a known term."""
    return _parts_by_term().get(term, ())


# --- what people type ---------------------------------------------------------------------

# Words for a region besides its code and its label. A defined term that lies in one
# region is not an alias: "KNEE" is refused and pointed to LOWERLIMB, so that a yes to
# knee scans is never silently widened to a yes for the whole leg.
REGION_ALIASES = {
    "HEAD AND BRAIN": "HEAD", "BRAIN": "HEAD",
    "THROAT": "NECK", "THORAX": "CHEST", "LUNGS": "CHEST", "BREASTS": "BREAST",
    "BELLY": "ABDOMEN", "TUMMY": "ABDOMEN", "HIPS": "PELVIS", "BACK": "SPINE",
    "ARM": "UPPERLIMB", "ARMS": "UPPERLIMB", "UPPER LIMB": "UPPERLIMB",
    "LEG": "LOWERLIMB", "LEGS": "LOWERLIMB", "LOWER LIMB": "LOWERLIMB",
}


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", (text or "").strip().upper().replace("_", " "))


def canonical_modality(text: str) -> str:
    """A modality code (CT, MR … or the group XRAY) for a code or a common alias."""
    key = _key(text)
    known = modalities()
    if key in known:
        return key
    aliases = _modality_data()["aliases"]
    if key in aliases:
        return aliases[key]
    if key.replace(" ", "") in known:
        return key.replace(" ", "")
    raise UnknownTerm(f"{text.strip()[:40]!r} is not a kind of scan we know",
                      _nearest(key, known, aliases))


def canonical_region(text: str) -> str:
    """A region code for a code, its label or an alias; a defined term inside a region is
    refused with the region that covers it."""
    key = _key(text)
    known = regions()
    by_label = {_key(label): code for code, label in known.items()}
    for table in (known, by_label, REGION_ALIASES):
        if key in table:
            return key if table is known else table[key]
    if key.replace(" ", "") in known:
        return key.replace(" ", "")
    # "KNEE" lies in one region, "head and neck" (HEADNECK) in two: name them, never
    # pick one, so a no is not narrowed and a yes not widened behind the person's back.
    covering = regions_of_term(key.replace(" AND ", "").replace(" ", ""))
    if covering:
        where = "part of a body region" if len(covering) == 1 else "more than one region"
        raise UnknownTerm(f"{text.strip()[:40]!r} is {where}; choices are made by region",
                          [(c, known[c]) for c in covering])
    raise UnknownTerm(f"{text.strip()[:40]!r} is not a part of the body we know",
                      _nearest(key, known, {**by_label, **REGION_ALIASES}))


def _nearest(key: str, known: dict[str, str], aliases: dict[str, str]
             ) -> list[tuple[str, str]]:
    words = {**{code: code for code in known}, **aliases}
    found: list[str] = []
    for word in difflib.get_close_matches(key, list(words), n=6, cutoff=0.5):
        if words[word] not in found:
            found.append(words[word])
    return [(code, known[code]) for code in found[:3]]


# --- what a series shows ------------------------------------------------------------------

WORD = re.compile(r"[A-Z0-9]+")


def anatomy_of(*, body_part: str, region_codes: Iterable[tuple[str, str]] = (),
               texts: Iterable[str] = ()) -> Anatomy:
    """A series' anatomy: Body Part Examined, else Anatomic Region Sequence codes
    (scheme, value), else whole words of its descriptions, else unknown."""
    tag = re.sub(r"[\s_\-]", "", (body_part or "").upper())
    if tag:
        found = _parts_by_term().get(tag)
        if found:
            return Anatomy((tag,), AnatomySource.TAG, _ordered(found))
        if tag in _keywords():
            name, found = _keywords()[tag]
            return Anatomy((name,), AnatomySource.TAG, _ordered(found))
    read = [_parts_by_code()[value.strip()] for _, value in region_codes
            if value and value.strip() in _parts_by_code()]
    if read:
        return _combined(read, AnatomySource.CODE)
    keywords = _keywords()
    words = [word for text in texts for word in WORD.findall((text or "").upper())]
    read = [keywords[word] for word in words if word in keywords]
    if read:
        return _combined(read, AnatomySource.DESCRIPTION)
    return UNKNOWN


def _combined(read: list[tuple[str, tuple[str, ...]]], source: str) -> Anatomy:
    names = tuple(dict.fromkeys(name for name, _ in read))
    return Anatomy(names, source, _ordered({r for _, found in read for r in found}))


def _ordered(found: Iterable[str]) -> tuple[str, ...]:
    found = set(found)
    return tuple(code for code in regions() if code in found)
