"""The consent decision rule (DESIGN.md, "The consent decision rule").

To decide whether study S of patient P may be used for purpose U at time T:

1. Candidates: for each (purpose, scope) of P, the newest record recorded at or before T
   whose effective-from is at or before T; dropped if it has expired by T (an older record
   never comes back). Kept if its purpose is U or an ancestor of U and its scope matches S.
2. Record A overrides B when A is at least as specific in both purpose (deeper in the tree)
   and scope (study > modality, body part > all) and strictly more specific in one.
3. Among the candidates nothing overrides: any deny gives deny; else a permit gives permit.
4. No candidates: U's default policy.

Two forms of the same rule: ``decide`` for one study, in Python over the patient's records;
``decide_stream`` for any number of studies, in one SQL statement (``consent/decide_sql.py``,
plus one query for the purpose tree) streamed study by study; ``decide_many`` gathers it into
a dict for small sets, ``decide_counts`` counts the outcomes in SQL.
``tests/consent/test_engine_property.py`` holds them to the same answers. Both end in
``conclude``, so the words of a decision are written once.

When anything needed cannot be read, the answer is deny ("fail closed"). So too for
anatomy: a body-part deny also matches a study with a series whose anatomy is unknown (or
with no series at all), and its reason says the no "may apply"; a body-part permit never
matches unknown anatomy. Scope values are canonical (consent/services.normalise_scope and a
database constraint): a modality code or group (registry/vocabulary.py), a region code.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.db.models import QuerySet

from consent.decide_sql import DECIDE_COUNTS_SQL, DECIDE_MANY_SQL, MODALITY_GROUPS_SQL
from consent.models import ConsentRecord, Decision, Policy, Purpose, ScopeKind
from consent.wording import mid_sentence
from registry import vocabulary
from registry.models import ImagingStudy, Series

logger = logging.getLogger(__name__)

# How specific a scope is; modality and body part are equally specific (incomparable).
SCOPE_RANK = {ScopeKind.ALL: 0, ScopeKind.MODALITY: 1, ScopeKind.BODY_PART: 1,
              ScopeKind.STUDY: 2}


class ConsentUnavailable(Exception):
    """Consent could not be read; every answer that depended on it is deny."""


@dataclass(frozen=True)
class Candidate:
    record_id: int
    decision: str
    purpose: Purpose
    depth: int
    scope_kind: str
    scope_value: str
    recorded_at: datetime
    # A body-part deny that matched only because some anatomy is not recorded.
    unsure: bool = False

    def overrides(self, other: Candidate) -> bool:
        mine, theirs = SCOPE_RANK[self.scope_kind], SCOPE_RANK[other.scope_kind]
        return (self.depth >= other.depth and mine >= theirs
                and (self.depth > other.depth or mine > theirs))


@dataclass(frozen=True)
class ConsentDecision:
    allowed: bool
    reason: str
    # The deciding records; empty when the purpose's default policy decided.
    record_ids: tuple[int, ...] = ()

    @property
    def decision(self) -> str:
        return Decision.PERMIT if self.allowed else Decision.DENY

    @property
    def by_default_policy(self) -> bool:
        return not self.record_ids


FAIL_CLOSED = ConsentDecision(
    allowed=False, reason="Not allowed: the consent on file could not be read (fail closed).")


class PurposeTree:
    """All purposes, read in one query; lineage = the purpose and its ancestors."""

    def __init__(self, purposes: Iterable[Purpose]):
        self.by_id = {p.pk: p for p in purposes}
        self.by_code = {p.code: p for p in self.by_id.values()}

    @classmethod
    def load(cls) -> PurposeTree:
        return cls(Purpose.objects.all())

    def get(self, purpose: Purpose | str) -> Purpose:
        code = purpose if isinstance(purpose, str) else purpose.code
        try:
            return self.by_code[code]
        except KeyError:
            raise LookupError(f"unknown purpose {code!r}") from None

    def lineage(self, purpose: Purpose) -> dict[int, int]:
        """{purpose id: depth} for the purpose and each ancestor; the root has depth 0."""
        chain = []
        seen = set()
        node: Purpose | None = purpose
        while node is not None:
            if node.pk in seen:
                raise ValueError(f"purpose tree has a cycle at {node.code!r}")
            seen.add(node.pk)
            chain.append(node.pk)
            node = self.by_id.get(node.parent_id) if node.parent_id else None
        return {pk: depth for depth, pk in enumerate(reversed(chain))}


# The purpose tree for the hot path (a single consent check): kept per process, reloaded
# when the shared cache's version token differs from the one it was loaded under (purpose
# services replace the token after each commit), when it is older than TREE_MAX_AGE (a
# backstop for a purpose changed outside the services, such as a data migration), or when
# the purpose asked for is not in it.
PURPOSE_TREE_VERSION_KEY = "consent:purpose-tree-version"
TREE_MAX_AGE = 60.0
_tree_cache: dict[str, tuple[PurposeTree, str, float]] = {}


def purpose_tree_changed() -> None:
    """Every process reloads its purpose tree before its next check. Called after a purpose
    write commits; a cache that cannot be reached only delays this to TREE_MAX_AGE."""
    try:
        cache.set(PURPOSE_TREE_VERSION_KEY, uuid.uuid4().hex, None)
    except Exception:  # any cache failure: the age backstop still holds
        logger.warning("could not announce a purpose tree change", exc_info=True)
        _tree_cache.clear()


def cached_purpose_tree(code: str = "") -> PurposeTree:
    """The purpose tree, without a query when this process's copy is current."""
    try:
        version = cache.get(PURPOSE_TREE_VERSION_KEY)
        if version is None:
            # A cleared or restarted cache: a new token makes every process reload.
            cache.add(PURPOSE_TREE_VERSION_KEY, uuid.uuid4().hex, None)
            version = cache.get(PURPOSE_TREE_VERSION_KEY)
    except Exception:  # without the shared cache, read the tree every time
        logger.warning("purpose tree version unreadable; reading the tree", exc_info=True)
        return PurposeTree.load()
    held = _tree_cache.get("tree")
    now = time.monotonic()
    if (held is not None and version is not None and held[1] == version
            and now - held[2] < TREE_MAX_AGE and (not code or code in held[0].by_code)):
        return held[0]
    # The token is read before the tree: a change committed in between leaves this copy
    # under the old token, so the next check reloads.
    tree = PurposeTree.load()
    if version is not None:
        _tree_cache["tree"] = (tree, version, now)
    return tree


def conclude(purpose: Purpose, candidates: Iterable[Candidate]) -> ConsentDecision:
    """Steps 2 to 4 of the rule over one study's candidates."""
    candidates = list(candidates)
    # One candidate (the common case over a hospital) overrides nothing and stands.
    standing = candidates if len(candidates) == 1 else [
        c for c in candidates
        if not any(other.overrides(c) for other in candidates if other is not c)]
    denies = sorted((c for c in standing if c.decision == Decision.DENY),
                    key=lambda c: c.record_id)
    if denies:
        return ConsentDecision(False, "Not allowed: " + "; ".join(map(_describe, denies)) + ".",
                               tuple(c.record_id for c in denies))
    permits = sorted((c for c in standing if c.decision == Decision.PERMIT),
                     key=lambda c: c.record_id)
    if permits:
        return ConsentDecision(True, "Allowed: " + "; ".join(map(_describe, permits)) + ".",
                               tuple(c.record_id for c in permits))
    name = mid_sentence(purpose.name)
    if purpose.default_policy == Policy.OPT_OUT:
        return ConsentDecision(True, f"Allowed: no choice on file for {name}, "
                                     "which is allowed unless the patient says no (opt-out).")
    return ConsentDecision(False, f"Not allowed: no choice on file for {name}, "
                                  "which needs the patient's yes (opt-in).")


def _describe(candidate: Candidate) -> str:
    verb = "said yes to" if candidate.decision == Decision.PERMIT else "said no to"
    scope = scope_words(candidate.scope_kind, candidate.scope_value)
    doubt = (f"; anatomy not recorded, so the no to {scope} may apply"
             if candidate.unsure else "")
    return (f"the patient {verb} {mid_sentence(candidate.purpose.name)} for {scope} "
            f"(record {candidate.record_id}, {candidate.recorded_at:%Y-%m-%d}{doubt})")


def scope_words(kind: str, value: str) -> str:
    """A scope in words: 'CT scans', 'scans of the head and brain'."""
    if kind == ScopeKind.STUDY:
        return "this study"
    if kind == ScopeKind.MODALITY:
        return "X-ray scans" if value in vocabulary.modality_groups() else f"{value} scans"
    if kind == ScopeKind.BODY_PART:
        return f"scans of the {vocabulary.region_label(value)}"
    return "all scans"


def canonical_value(kind: str, value: str) -> str:
    """The form "newest per scope" groups on: upper case for codes, UIDs as they are."""
    return value.upper() if kind in (ScopeKind.MODALITY, ScopeKind.BODY_PART) else value


def utc(at: datetime) -> datetime:
    """The moment in UTC. SQLite compares stored times as text, so a moment in another
    zone must be converted before it reaches SQL; a naive one is a caller error."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a decision needs an aware moment, not {at!r}")
    return at.astimezone(UTC)


# --- one study ---------------------------------------------------------------------------

def decide(study: ImagingStudy, purpose: Purpose | str, at: datetime, *,
           tree: PurposeTree | None = None) -> ConsentDecision:
    """May this study be used for this purpose at this moment? Fail closed."""
    try:
        modalities, anatomies = set(), []
        for modality, regions in Series.objects.filter(study_id=study.pk).values_list(
                "modality", "anatomy_regions"):
            modalities.add(modality.upper())
            anatomies.append(frozenset(r for r in regions.split("|") if r))
        return _decide(study.patient_id, purpose, at, tree=tree, study_uid=study.study_uid,
                       modalities=modalities, anatomies=anatomies)
    except (DatabaseError, ValueError):
        logger.exception("consent decision failed closed")
        return FAIL_CLOSED


def decide_in_general(patient_id: int, purpose: Purpose | str, at: datetime, *,
                      tree: PurposeTree | None = None) -> ConsentDecision:
    """The answer for a study no narrower choice applies to: only all-studies records count.
    This is a patient's general choice per purpose, as the portal shows it."""
    try:
        return _decide(patient_id, purpose, at, tree=tree)
    except (DatabaseError, ValueError):
        logger.exception("consent decision failed closed")
        return FAIL_CLOSED


def _decide(patient_id: int, purpose: Purpose | str, at: datetime, *,
            tree: PurposeTree | None, study_uid: str = "",
            modalities: frozenset[str] | set[str] = frozenset(),
            anatomies: list[frozenset[str]] | None = None) -> ConsentDecision:
    """``anatomies``: each series' regions (empty = unknown); None when deciding for no
    study in particular, where only all-studies records apply."""
    at = utc(at)
    tree = tree or PurposeTree.load()
    target = tree.get(purpose)
    lineage = tree.lineage(target)
    records = (ConsentRecord.objects
               .filter(patient_id=patient_id, purpose_id__in=lineage,
                       recorded_at__lte=at, effective_from__lte=at)
               .order_by("recorded_at", "id")
               .values_list("id", "purpose_id", "decision", "scope_kind", "scope_value",
                            "expires_at", "recorded_at"))
    newest: dict[tuple, tuple] = {}
    for row in records:  # ordered oldest first, so the newest per scope is kept last
        newest[(row[1], row[3], canonical_value(row[3], row[4]))] = row
    candidates = []
    for record_id, purpose_id, decision, kind, value, expires_at, recorded_at in (
            newest.values()):
        if expires_at is not None and expires_at <= at:
            continue
        matches, unsure = scope_matches(kind, canonical_value(kind, value), decision,
                                         study_uid, modalities, anatomies)
        if matches:
            candidates.append(Candidate(record_id, decision, tree.by_id[purpose_id],
                                        lineage[purpose_id], kind, value, recorded_at,
                                        unsure))
    return conclude(target, candidates)


def scope_matches(kind: str, value: str, decision: str, study_uid: str,
                   modalities: frozenset[str] | set[str],
                   anatomies: list[frozenset[str]] | None) -> tuple[bool, bool]:
    """(does the scope match the study, only because anatomy is unknown). ``anatomies``:
    each series' regions, empty when unknown; None for no study in particular."""
    if kind == ScopeKind.ALL:
        return True, False
    if kind == ScopeKind.STUDY:
        return bool(study_uid) and value == study_uid, False
    if kind == ScopeKind.MODALITY:
        return bool(modalities.intersection(vocabulary.modality_covers(value))), False
    if kind != ScopeKind.BODY_PART or anatomies is None:
        return False, False
    if decision == Decision.PERMIT:
        # A yes covers a series that lies wholly in the region, never unknown anatomy.
        return any(regions == {value} for regions in anatomies), False
    if any(value in regions for regions in anatomies):
        return True, False
    unknown = not anatomies or any(not regions for regions in anatomies)
    return unknown, unknown


# --- many studies, one statement ---------------------------------------------------------

@dataclass(frozen=True)
class StudyDecision:
    """One study's answer from the set-based form, with what callers need to name it."""

    study_id: int
    patient_id: int
    study_uid: str
    decision: ConsentDecision


@dataclass(frozen=True)
class DecisionCounts:
    """How a selection's decisions end, counted by the database (``decide_counts``)."""

    # Allowed by a standing permit, refused by a standing deny, decided by the default policy.
    permitted: int
    refused: int
    by_default: int
    # Whether the purpose's default policy allows (opt-out).
    default_allows: bool

    @property
    def total(self) -> int:
        return self.permitted + self.refused + self.by_default

    @property
    def allowed(self) -> int:
        return self.permitted + (self.by_default if self.default_allows else 0)


# Rows fetched from the server-side cursor at a time: enough to amortise round trips, few
# enough that memory stays flat however many studies are selected.
STREAM_CHUNK = 5000


@contextmanager
def _without_jit() -> Iterator[None]:
    """PostgreSQL's JIT off while a big decision statement is planned. Correlated look-ups
    make the planner's cost estimate huge, which sets off JIT compilation: measured at 2 to
    7 s for a statement that then runs in well under one. The setting is put back after."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit'), set_config('jit', 'off', false)")
        previous = cursor.fetchone()[0]
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('jit', %s, false)", [previous])


def _decide_statement(template: str, studies: QuerySet[ImagingStudy], lineage: dict[int, int],
                      at: datetime, by: tuple[str, ...] = ()) -> tuple[str, list]:
    for name in by:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a column name: {name!r}")
    selected_sql, selected_params = (
        studies.order_by().values_list("id", "patient_id", "study_uid", *by)
        .query.sql_with_params())
    sql = template.format(
        selected=selected_sql,
        by_columns="".join(f", {name}" for name in by),
        by_select="".join(f", s.{name}" for name in by),
        by_tail="".join(f", v.{name}" for name in by),
        records=ConsentRecord._meta.db_table,
        series=Series._meta.db_table,
        purposes=", ".join(["%s"] * len(lineage)),
        depths=" ".join(["WHEN %s THEN %s"] * len(lineage)),
        groups=MODALITY_GROUPS_SQL,
    )
    # The database's own form of the moment (on SQLite, UTC text like the stored
    # times), never the driver's rendering of an aware datetime.
    moment = connection.ops.adapt_datetimefield_value(at)
    params = [*selected_params, *lineage, moment, moment,
              *[v for pair in lineage.items() for v in pair], moment]
    return sql, params


def decide_stream(studies: QuerySet[ImagingStudy], purpose: Purpose | str, at: datetime, *,
                  tree: PurposeTree | None = None, server_side: bool = True,
                  ) -> Iterator[StudyDecision]:
    """Decide for every study of the queryset, in study id order, one at a time: one SQL
    statement (plus the purpose tree) whose rows stream through a server-side cursor on
    PostgreSQL, so memory stays bounded whatever the number of studies. ``server_side``
    False uses a plain cursor: one round trip instead of three, for a small batch. Raises
    ConsentUnavailable if consent cannot be read: the caller must then treat every study it
    has not yet been given as denied."""
    try:
        at = utc(at)
        tree = tree or PurposeTree.load()
        target = tree.get(purpose)
        lineage = tree.lineage(target)
        sql, params = _decide_statement(DECIDE_MANY_SQL, studies, lineage, at)
        # Opt-in and opt-out answers with no candidate are the same object for every study.
        default = conclude(target, ())
        current: tuple[int, int, str] | None = None
        found: list[Candidate] = []
        with connection.chunked_cursor() if server_side else connection.cursor() as cursor:
            if server_side:
                with _without_jit():
                    cursor.execute(sql, params)
            else:
                cursor.execute(sql, params)
            while rows := cursor.fetchmany(STREAM_CHUNK):
                for (study_id, patient_id, study_uid, record_id, decision, purpose_id, kind,
                     value, recorded_at, unsure) in rows:
                    if record_id is None:
                        # No candidate: the study's only row, and the default policy decides.
                        if current is not None:
                            yield _concluded(current, target, found)
                            current = None
                        yield StudyDecision(study_id, patient_id, study_uid, default)
                        continue
                    if current is None or current[0] != study_id:
                        if current is not None:
                            yield _concluded(current, target, found)
                        current, found = (study_id, patient_id, study_uid), []
                    found.append(Candidate(record_id, decision, tree.by_id[purpose_id],
                                           lineage[purpose_id], kind, value,
                                           recorded_at, bool(unsure)))
            if current is not None:
                yield _concluded(current, target, found)
    except (DatabaseError, ValueError) as exc:
        raise ConsentUnavailable(str(exc)) from exc


def _concluded(study: tuple[int, int, str], target: Purpose,
               found: list[Candidate]) -> StudyDecision:
    # The SQL already removed overridden candidates; conclude applies steps 3 and 4.
    return StudyDecision(*study, conclude(target, found))


def decide_many(studies: QuerySet[ImagingStudy], purpose: Purpose | str, at: datetime, *,
                tree: PurposeTree | None = None) -> dict[int, ConsentDecision]:
    """``decide_stream`` gathered into {study id: decision}, for callers that hold a bounded
    number of studies (a batch check, one patient, one withdrawal). A whole selection is
    consumed with ``decide_stream`` or counted with ``decide_counts`` instead."""
    return {d.study_id: d.decision
            for d in decide_stream(studies, purpose, at, tree=tree, server_side=False)}


def decide_counts(studies: QuerySet[ImagingStudy], purpose: Purpose | str, at: datetime, *,
                  tree: PurposeTree | None = None) -> DecisionCounts:
    """How many selected studies a standing permit allows, a standing deny refuses, and the
    default policy decides: counted by the database, no study reaches Python."""
    tree = tree or PurposeTree.load()
    target = tree.get(purpose)
    tally = decide_tally(studies, target, at, tree=tree)
    return DecisionCounts(permitted=tally.get((1,), 0), refused=tally.get((2,), 0),
                          by_default=tally.get((0,), 0),
                          default_allows=target.default_policy == Policy.OPT_OUT)


def decide_tally(studies: QuerySet[ImagingStudy], purpose: Purpose | str, at: datetime, *,
                 tree: PurposeTree | None = None, by: tuple[str, ...] = (),
                 ) -> dict[tuple, int]:
    """{(verdict, *values of ``by``): studies}: verdict 2 when a standing deny decides, 1 when
    a standing permit does, 0 when the default policy does. ``by`` names columns the
    queryset carries (annotations), so a caller counts outcomes by its own facts about each
    study, in the same statement, without this layer knowing what they mean."""
    try:
        at = utc(at)
        tree = tree or PurposeTree.load()
        target = tree.get(purpose)
        sql, params = _decide_statement(DECIDE_COUNTS_SQL, studies, tree.lineage(target), at,
                                        by)
        with connection.cursor() as cursor, _without_jit():
            cursor.execute(sql, params)
            return {tuple(row[:-1]): row[-1] for row in cursor.fetchall()}
    except (DatabaseError, ValueError) as exc:
        raise ConsentUnavailable(str(exc)) from exc
