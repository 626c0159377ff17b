"""An independent reading of DESIGN.md's consent decision rule, to hold the engine to.

It shares no code with consent/engine.py or consent/decide_sql.py: it takes plain values
(no model instances, no vocabulary calls) and spells each step of the rule out the long way,
so that a reader can check it against DESIGN.md line by line. It is slow and that is fine.

The rule, as DESIGN.md states it (with the README's reading of regions):

1. Candidates: for each (purpose, scope) of the patient, the newest record recorded at or
   before T whose effective-from is at or before T; dropped if it has expired by T (an older
   record never comes back). Kept if its purpose is U or an ancestor of U and its scope
   matches the study.
2. A overrides B when A is at least as specific in purpose (deeper) and scope
   (study > modality = body part > all) and strictly more specific in one.
3. Among candidates nothing overrides: any deny gives deny; else a permit gives permit.
4. No candidates: U's default policy.
When anything needed cannot be read (here: the purpose tree has a cycle or U is unknown),
the answer is deny.

Scope matching: all matches every study; study matches the study with that UID; a modality
matches when any series has it (the group XRAY stands for CR, DX and RG); a body part
permit matches when some series lies wholly in the region; a body part deny matches when
some series touches the region, or when any series' anatomy is unknown or the study has no
series at all ("fail closed").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# README, "Kinds of scan": the one group, written out here rather than read from the
# vocabulary the engine uses.
XRAY_GROUP = {"XRAY": {"CR", "DX", "RG"}}
SPECIFICITY = {"all": 0, "modality": 1, "body_part": 1, "study": 2}


@dataclass(frozen=True)
class PurposeRow:
    code: str
    parent: str | None
    policy: str  # "opt-in" | "opt-out"


@dataclass(frozen=True)
class RecordRow:
    id: int
    patient: int
    purpose: str
    decision: str  # "permit" | "deny"
    kind: str  # "all" | "study" | "modality" | "body_part"
    value: str
    recorded: datetime
    effective: datetime
    expires: datetime | None


@dataclass(frozen=True)
class SeriesRow:
    modality: str
    regions: frozenset[str]  # empty: anatomy unknown


@dataclass(frozen=True)
class StudyRow:
    patient: int
    uid: str
    series: tuple[SeriesRow, ...]


@dataclass(frozen=True)
class Answer:
    allowed: bool
    deciding: frozenset[int]  # empty when the default policy decided


DENY_UNREADABLE = Answer(False, frozenset())


def ancestors_with_depth(purposes: dict[str, PurposeRow], code: str) -> dict[str, int] | None:
    """{code: depth from the root} for the purpose and all its ancestors; None on a cycle."""
    path = []
    current: str | None = code
    while current is not None:
        if current in path:
            return None
        path.append(current)
        current = purposes[current].parent
    # path runs from the purpose up to the root; the root is depth 0.
    return {c: len(path) - 1 - i for i, c in enumerate(path)}


def scope_matches(record: RecordRow, study: StudyRow) -> bool:
    if record.kind == "all":
        return True
    if record.kind == "study":
        return record.value == study.uid
    if record.kind == "modality":
        wanted = XRAY_GROUP.get(record.value.upper(), {record.value.upper()})
        return any(s.modality.upper() in wanted for s in study.series)
    if record.kind == "body_part":
        region = record.value.upper()
        if record.decision == "permit":
            return any(s.regions == {region} for s in study.series)
        touches = any(region in s.regions for s in study.series)
        unknown = not study.series or any(not s.regions for s in study.series)
        return touches or unknown
    return False


def more_specific(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """a = (purpose depth, scope specificity) overrides b."""
    return a[0] >= b[0] and a[1] >= b[1] and a != b


def decide(purposes: dict[str, PurposeRow], records: list[RecordRow], study: StudyRow,
           purpose: str, at: datetime) -> Answer:
    if purpose not in purposes:
        return DENY_UNREADABLE
    lineage = ancestors_with_depth(purposes, purpose)
    if lineage is None:
        return DENY_UNREADABLE

    # Step 1. Aware datetimes compare as instants whatever their zones.
    own = [r for r in records if r.patient == study.patient]
    scopes = {(r.purpose, r.kind, r.value.upper() if r.kind != "study" else r.value)
              for r in own}
    candidates = []
    for scope in scopes:
        known_then = [r for r in own
                      if (r.purpose, r.kind, r.value.upper() if r.kind != "study" else r.value)
                      == scope and r.recorded <= at and r.effective <= at]
        if not known_then:
            continue
        # The newest: recorded last; of two recorded at the same instant, the later made.
        newest = max(known_then, key=lambda r: (r.recorded, r.id))
        if newest.expires is not None and newest.expires <= at:
            continue  # expired: no older record comes back
        if newest.purpose in lineage and scope_matches(newest, study):
            candidates.append(newest)

    # Step 2.
    def rank(r: RecordRow) -> tuple[int, int]:
        return (lineage[r.purpose], SPECIFICITY[r.kind])

    standing = [c for c in candidates
                if not any(more_specific(rank(o), rank(c)) for o in candidates)]
    # Step 3.
    denies = frozenset(c.id for c in standing if c.decision == "deny")
    if denies:
        return Answer(False, denies)
    permits = frozenset(c.id for c in standing if c.decision == "permit")
    if permits:
        return Answer(True, permits)
    # Step 4.
    return Answer(purposes[purpose].policy == "opt-out", frozenset())
