"""decide_many (SQL) and decide (Python) give the same answer for every study, over random
purpose trees, records, studies and moments: moments in any time zone, scope values typed
in any case or as aliases (canonicalised by the service's normalise_scope), series whose
anatomy is a region, spans regions, is read from a description or is unknown."""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.engine import PurposeTree, decide, decide_many
from consent.services import normalise_scope
from registry.models import ImagingStudy
from tests.consent.factories import make_timed_record, make_world

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODALITIES = ["CT", "MR", "US", "CR", "DX", "ct", "mr"]
# Body Part Examined as files carry it: in a region, spanning regions, lower case, a
# vendor's variant, not a defined term, absent.
BODY_PARTS = ["HEAD", "BRAIN", "SKULL", "CHEST", "KNEE", "HEADNECK", "CHESTABDOMEN",
              "head", "Chest", "THORAX", "SKIN", ""]
DESCRIPTIONS = ["", "MR BRAIN", "CT CHEST ABDOMEN", "SCOUT"]
# What people type for a scope; normalise_scope stores the canonical code.
MODALITY_INPUT = ["CT", "mr", "MRI", "Us", "x-ray", "CR"]
REGION_INPUT = ["HEAD", "head", "Head and brain", "CHEST", "lungs", "Neck", "ABDOMEN",
                "legs"]
# Offsets of the moment a decision is asked for, hours from UTC.
ZONES = [0, -8, 5.5, 14, -12]


@st.composite
def worlds(draw):
    n_purposes = draw(st.integers(1, 5))
    # Each purpose's parent is an earlier one (or none): always a tree.
    parents = [draw(st.none() | st.integers(0, i - 1)) if i else None
               for i in range(n_purposes)]
    policies = draw(st.lists(st.sampled_from(["opt-in", "opt-out"]), min_size=n_purposes,
                             max_size=n_purposes))
    n_patients = draw(st.integers(1, 3))
    studies = draw(st.lists(st.tuples(
        st.integers(0, n_patients - 1),
        st.lists(st.tuples(st.sampled_from(MODALITIES), st.sampled_from(BODY_PARTS),
                           st.sampled_from(DESCRIPTIONS)),
                 min_size=0, max_size=3)),
        min_size=1, max_size=5))
    records = draw(st.lists(st.fixed_dictionaries({
        "patient": st.integers(0, n_patients - 1),
        "purpose": st.integers(0, n_purposes - 1),
        "decision": st.sampled_from(["permit", "deny"]),
        "scope": st.one_of(
            st.just(("all", "")),
            st.tuples(st.just("modality"), st.sampled_from(MODALITY_INPUT)),
            st.tuples(st.just("body_part"), st.sampled_from(REGION_INPUT)),
            st.tuples(st.just("study"), st.integers(0, 4))),
        "recorded": st.integers(0, 20),
        "recorded_hour": st.sampled_from([0, 6, 23]),
        "effective_delay": st.integers(0, 5),
        "lasts": st.none() | st.integers(1, 10),
    }), max_size=12))
    moments = draw(st.lists(st.tuples(st.integers(-1, 30), st.sampled_from([0, 1, 6, 17]),
                                      st.sampled_from(ZONES)),
                            min_size=1, max_size=3))
    return parents, policies, n_patients, studies, records, moments


def build(world):
    parents, policies, n_patients, study_specs, record_specs, _ = world
    purposes, patients, studies = make_world(parents, policies, n_patients, study_specs,
                                             prefix="p")
    for spec in record_specs:
        kind, value = spec["scope"]
        patient = patients[spec["patient"]]
        if kind == "study":
            study = studies[value % len(studies)]
            value, patient = study.study_uid, study.patient
        value = normalise_scope(patient=patient, scope_kind=kind, scope_value=value)
        recorded = T0 + timedelta(days=spec["recorded"], hours=spec["recorded_hour"])
        effective = recorded + timedelta(days=spec["effective_delay"])
        make_timed_record(
            patient=patient, purpose=purposes[spec["purpose"]], decision=spec["decision"],
            scope_kind=kind, scope_value=value, recorded=recorded, effective=effective,
            expires=(effective + timedelta(days=spec["lasts"])) if spec["lasts"] else None)
    return purposes, studies


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(world=worlds())
def test_decide_many_equals_decide_for_every_study(db, world):
    purposes, studies = build(world)
    tree = PurposeTree.load()
    selection = ImagingStudy.objects.filter(pk__in=[s.pk for s in studies])
    for day, hour, zone in world[-1]:
        when = (T0 + timedelta(days=day, hours=hour)).astimezone(
            timezone(timedelta(hours=zone)))
        for purpose in purposes:
            many = decide_many(selection, purpose.code, when, tree=tree)
            assert set(many) == {s.pk for s in studies}
            for study in studies:
                assert many[study.pk] == decide(study, purpose.code, when, tree=tree), (
                    purpose.code, study.study_uid, when)
