"""Both forms of the engine (``decide`` per study, ``decide_many`` set-based) against an
independent model of DESIGN.md's rule (tests/consent/model_rule.py), over random purpose
trees, records and studies. Unlike test_engine_property.py, which compares the two forms
with each other (and both end in the same conclude()), this compares each with a reading
that shares no code with them.

The moments asked about include the exact instants a record was recorded, became effective
and expires (and a microsecond either side), in zones that are not UTC nor whole hours;
records may be back-dated (effective before they were recorded) or dated in the future;
several records of one scope may be recorded at the same instant; modalities are stored in
mixed case; scopes name regions, X-ray groups and studies; anatomy may be unknown."""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.engine import PurposeTree, decide, decide_many
from consent.models import ConsentRecord, Purpose
from consent.services import normalise_scope
from registry.models import ImagingStudy, Series
from tests.consent import model_rule
from tests.consent.factories import make_timed_record, make_world

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MODALITIES = ["CT", "ct", "Mr", "MR", "CR", "dx", "US", "RG"]
BODY_PARTS = ["HEAD", "brain", "CHEST", "Knee", "HEADNECK", "CHESTABDOMEN", "WHOLEBODY",
              "SKIN", ""]
DESCRIPTIONS = ["", "MR BRAIN", "CT CHEST ABDOMEN", "SCOUT"]
MODALITY_INPUT = ["CT", "mr", "MRI", "x-ray", "Cr", "DX", "ultrasound"]
REGION_INPUT = ["HEAD", "head and brain", "Chest", "NECK", "abdomen", "legs", "SPINE"]
ZONES = [UTC, timezone(timedelta(hours=-8)), timezone(timedelta(hours=5, minutes=45)),
         timezone(timedelta(hours=14)), timezone(timedelta(hours=-3, minutes=-30)),
         ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe")]
# How long after being recorded a record takes effect: back-dated (negative), at once,
# or later.
EFFECTIVE_DELAY = [timedelta(days=-3), timedelta(hours=-1), timedelta(0), timedelta(0),
                   timedelta(minutes=1), timedelta(days=2)]
LASTS = [None, None, timedelta(microseconds=1), timedelta(hours=1), timedelta(days=3)]
NUDGE = [timedelta(0), timedelta(microseconds=-1), timedelta(microseconds=1)]


@st.composite
def worlds(draw):
    n_purposes = draw(st.integers(1, 4))
    parents = [draw(st.none() | st.integers(0, i - 1)) if i else None
               for i in range(n_purposes)]
    policies = [draw(st.sampled_from(["opt-in", "opt-out"])) for _ in range(n_purposes)]
    n_patients = draw(st.integers(1, 2))
    studies = draw(st.lists(st.tuples(
        st.integers(0, n_patients - 1),
        st.lists(st.tuples(st.sampled_from(MODALITIES), st.sampled_from(BODY_PARTS),
                           st.sampled_from(DESCRIPTIONS)), max_size=3)),
        min_size=1, max_size=4))
    records = draw(st.lists(st.fixed_dictionaries({
        "patient": st.integers(0, n_patients - 1),
        "purpose": st.integers(0, n_purposes - 1),
        "decision": st.sampled_from(["permit", "deny"]),
        "scope": st.one_of(
            st.just(("all", "")),
            st.tuples(st.just("modality"), st.sampled_from(MODALITY_INPUT)),
            st.tuples(st.just("body_part"), st.sampled_from(REGION_INPUT)),
            st.tuples(st.just("study"), st.integers(0, 3))),
        # Six-hour steps: records of one scope are often recorded at the same instant.
        "recorded": st.integers(0, 12),
        "delay": st.sampled_from(EFFECTIVE_DELAY),
        "lasts": st.sampled_from(LASTS),
    }), max_size=10))
    # A moment is a record's boundary instant (nudged by a microsecond or not), or any
    # six-hourly step; then shown in some zone.
    moments = draw(st.lists(st.tuples(
        st.one_of(st.tuples(st.just("record"), st.integers(0, 9),
                            st.sampled_from(["recorded", "effective", "expires"])),
                  st.tuples(st.just("step"), st.integers(-1, 16), st.just(""))),
        st.sampled_from(NUDGE), st.sampled_from(ZONES)), min_size=1, max_size=4))
    return parents, policies, n_patients, studies, records, moments


def build(world):
    parents, policies, n_patients, study_specs, record_specs, _ = world
    purposes, patients, studies = make_world(parents, policies, n_patients, study_specs,
                                             prefix="m", keep_modality_case=True)
    records = []
    for spec in record_specs:
        kind, value = spec["scope"]
        patient = patients[spec["patient"]]
        if kind == "study":
            study = studies[value % len(studies)]
            value, patient = study.study_uid, study.patient
        value = normalise_scope(patient=patient, scope_kind=kind, scope_value=value)
        recorded = T0 + timedelta(hours=6 * spec["recorded"])
        effective = recorded + spec["delay"]
        records.append(make_timed_record(
            patient=patient, purpose=purposes[spec["purpose"]], decision=spec["decision"],
            scope_kind=kind, scope_value=value, recorded=recorded, effective=effective,
            expires=effective + spec["lasts"] if spec["lasts"] else None))
    return purposes, studies, records


def moment(spec, records):
    (what, index, field), nudge, zone = spec
    if what == "record" and records:
        record = records[index % len(records)]
        base = {"recorded": record.recorded_at, "effective": record.effective_from,
                "expires": record.expires_at or record.effective_from}[field]
    else:
        base = T0 + timedelta(hours=6 * index)
    return (base + nudge).astimezone(zone)


def model_world(studies):
    """The world as plain values, read back from the database as the engine would find it."""
    purposes = {
        code: model_rule.PurposeRow(code, parent, policy)
        for code, parent, policy in Purpose.objects.values_list(
            "code", "parent__code", "default_policy")}
    records = [model_rule.RecordRow(*row) for row in ConsentRecord.objects.values_list(
        "id", "patient_id", "purpose__code", "decision", "scope_kind", "scope_value",
        "recorded_at", "effective_from", "expires_at")]
    rows = {}
    for study in studies:
        series = tuple(
            model_rule.SeriesRow(modality, frozenset(r for r in regions.split("|") if r))
            for modality, regions in Series.objects.filter(study=study).values_list(
                "modality", "anatomy_regions"))
        rows[study.pk] = model_rule.StudyRow(study.patient_id, study.study_uid, series)
    return purposes, records, rows


def check_world(world):
    purposes, studies, records = build(world)
    model_purposes, model_records, model_studies = model_world(studies)
    tree = PurposeTree.load()
    selection = ImagingStudy.objects.filter(pk__in=[s.pk for s in studies])
    for spec in world[-1]:
        when = moment(spec, records)
        for purpose in purposes:
            many = decide_many(selection, purpose.code, when, tree=tree)
            for study in studies:
                expected = model_rule.decide(model_purposes, model_records,
                                             model_studies[study.pk], purpose.code, when)
                one = decide(study, purpose.code, when, tree=tree)
                context = (purpose.code, study.study_uid, when.isoformat())
                assert (one.allowed, frozenset(one.record_ids)) == (
                    expected.allowed, expected.deciding), ("decide", *context, one.reason)
                got = many[study.pk]
                assert (got.allowed, frozenset(got.record_ids)) == (
                    expected.allowed, expected.deciding), ("decide_many", *context,
                                                           got.reason)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(world=worlds())
def test_both_engine_forms_agree_with_the_independent_model(db, world):
    check_world(world)


# Hand-picked worlds the random search might take long to reach, each a boundary of the
# rule; they go through the same comparison.

def _record(patient=0, purpose=0, decision="permit", scope=("all", ""), recorded=0,
            delay=timedelta(0), lasts=None):
    return {"patient": patient, "purpose": purpose, "decision": decision, "scope": scope,
            "recorded": recorded, "delay": delay, "lasts": lasts}


def test_model_agrees_at_the_instant_a_back_dated_record_is_recorded(db):
    records = [_record(decision="deny", recorded=2), _record(recorded=4,
                                                             delay=timedelta(days=-3))]
    moments = [(("record", 1, field), nudge, ZONES[2]) for field in ("recorded", "effective")
               for nudge in NUDGE]
    check_world(([None], ["opt-in"], 1, [(0, [("CT", "HEAD", "")])], records, moments))


def test_model_agrees_at_the_instant_a_record_expires(db):
    records = [_record(decision="deny"), _record(recorded=1, lasts=timedelta(hours=1))]
    moments = [(("record", 1, "expires"), nudge, ZONES[5]) for nudge in NUDGE]
    check_world(([None], ["opt-out"], 1, [(0, [("MR", "", "")])], records, moments))


def test_model_agrees_on_two_records_of_one_scope_recorded_at_the_same_instant(db):
    records = [_record(decision="deny", recorded=3), _record(recorded=3)]
    moments = [(("record", 0, "recorded"), NUDGE[0], ZONES[6])]
    check_world(([None], ["opt-in"], 1, [(0, [])], records, moments))


def test_model_agrees_on_a_deeper_region_deny_with_unknown_anatomy(db):
    records = [_record(purpose=0, scope=("study", 0)),
               _record(purpose=1, decision="deny", scope=("body_part", "HEAD"))]
    moments = [(("step", 2, ""), NUDGE[0], ZONES[4])]
    check_world(([None, 0], ["opt-in", "opt-in"], 1, [(0, [("cr", "", "")])], records,
                 moments))
