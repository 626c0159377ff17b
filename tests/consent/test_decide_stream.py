"""The streamed and counted forms of the set-based rule (``decide_stream``,
``decide_counts``) give the Python rule's answers, over the same generated worlds as
test_engine_property: every selected study once, in id order, with its UID and patient, and
counts by outcome that add up to the per-study answers."""

from collections import Counter
from datetime import timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings

from consent.decide_sql import groups_sql
from consent.engine import (
    ConsentUnavailable,
    PurposeTree,
    decide,
    decide_counts,
    decide_stream,
    decide_tally,
)
from consent.models import Purpose
from registry.models import ImagingStudy
from tests.consent.test_engine_property import T0, build, worlds


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(world=worlds())
def test_stream_and_counts_equal_decide_for_every_study(db, world):
    purposes, studies = build(world)
    tree = PurposeTree.load()
    selection = ImagingStudy.objects.filter(pk__in=[s.pk for s in studies])
    for day, hour, zone in world[-1]:
        when = (T0 + timedelta(days=day, hours=hour)).astimezone(
            timezone(timedelta(hours=zone)))
        for purpose in purposes:
            streamed = list(decide_stream(selection, purpose.code, when, tree=tree))
            assert [d.study_id for d in streamed] == sorted(s.pk for s in studies)
            outcomes = Counter()
            for answer, study in zip(streamed, sorted(studies, key=lambda s: s.pk),
                                     strict=True):
                expected = decide(study, purpose.code, when, tree=tree)
                assert answer.decision == expected, (purpose.code, study.study_uid, when)
                assert (answer.study_uid, answer.patient_id) == (study.study_uid,
                                                                 study.patient_id)
                outcomes["by_default" if expected.by_default_policy
                         else "permitted" if expected.allowed else "refused"] += 1
            counts = decide_counts(selection, purpose.code, when, tree=tree)
            assert (counts.permitted, counts.refused, counts.by_default) == (
                outcomes["permitted"], outcomes["refused"], outcomes["by_default"])
            assert counts.allowed == sum(1 for d in streamed if d.decision.allowed)


def test_empty_selection_streams_nothing_and_counts_zero(db):
    purpose = Purpose.objects.get(code="ai-training")
    at = T0 + timedelta(days=1)
    assert list(decide_stream(ImagingStudy.objects.filter(pk=-1), purpose, at)) == []
    counts = decide_counts(ImagingStudy.objects.filter(pk=-1), purpose, at)
    assert counts.total == counts.allowed == 0


def test_unknown_purpose_and_naive_moment_are_refused(db):
    studies = ImagingStudy.objects.all()
    # LookupError, as decide_many always raised: the API answers 400 "Unknown purpose".
    with pytest.raises(LookupError):
        list(decide_stream(studies, "no-such-purpose", T0))
    with pytest.raises(ConsentUnavailable):
        decide_counts(studies, "ai-training", T0.replace(tzinfo=None))


def test_a_count_by_anything_but_a_plain_column_name_is_refused(db):
    # ``by`` names go into the statement's text: anything but a plain name is refused
    # before any SQL is written, and the caller is told consent is unavailable.
    studies = ImagingStudy.objects.all()
    with pytest.raises(ConsentUnavailable, match="not a column name"):
        decide_tally(studies, "ai-training", T0, by=("study_uid); DROP TABLE x; --",))
    with pytest.raises(ConsentUnavailable, match="not a column name"):
        decide_tally(studies, "ai-training", T0, by=("Study_UID",))


def test_modality_groups_reach_the_statement_only_as_plain_codes():
    assert groups_sql({"XRAY": ("CR", "DX")}) == (
        " OR (m.canonical = 'XRAY' AND UPPER(se.modality) IN ('CR', 'DX'))")
    for groups in ({"XRAY": ("CR", "D'X")}, {"X RAY": ("CR",)}, {"xray": ("CR",)}):
        with pytest.raises(ValueError, match="not a modality code"):
            groups_sql(groups)


def test_a_tally_counts_each_outcome_by_the_callers_own_columns(db):
    """The export preview counts by its safety facts: here, whose study it is."""
    from django.db.models import BooleanField, ExpressionWrapper, Q

    from tests.consent.factories import at, make_patient, make_record, make_study

    alice, bob = make_patient(), make_patient()
    alices = [make_study(alice) for _ in range(2)]
    bobs = [make_study(bob) for _ in range(3)]
    make_record(alice, "ai-training", "permit")
    make_record(bob, "ai-training", "deny", scope_kind="study", scope_value=bobs[0].study_uid)
    studies = ImagingStudy.objects.filter(pk__in=[s.pk for s in alices + bobs]).annotate(
        of_alice=ExpressionWrapper(Q(patient=alice), output_field=BooleanField()),
        first_of_bob=ExpressionWrapper(Q(pk=bobs[0].pk), output_field=BooleanField()))
    tally = decide_tally(studies, "ai-training", at(1), by=("of_alice",))
    # 1: a standing yes decides, 2: a standing no, 0: the default policy (opt-in, no one).
    assert tally == {(1, True): 2, (2, False): 1, (0, False): 2}
    assert decide_tally(studies, "ai-training", at(1), by=("of_alice", "first_of_bob")) == {
        (1, True, False): 2, (2, False, True): 1, (0, False, False): 2}
    assert decide_tally(studies, "ai-training", at(1)) == {(1,): 2, (2,): 1, (0,): 2}
