"""Every clause of DESIGN.md's consent decision rule, each on its own."""

import pytest
from django.db import connection, transaction

from consent.engine import FAIL_CLOSED, ConsentUnavailable, decide, decide_many
from registry.models import ImagingStudy
from tests.consent.factories import at, make_patient, make_record, make_study

pytestmark = pytest.mark.django_db


def both(study, purpose_code, when):
    """The per-study and the set-based answer, which must agree."""
    one = decide(study, purpose_code, when)
    many = decide_many(ImagingStudy.objects.filter(pk=study.pk), purpose_code, when)[study.pk]
    assert one == many
    return one


@pytest.fixture
def ct_chest():
    return make_study(make_patient(), ("CT", "CHEST"))


# Step 4: no candidates, the purpose's default policy.

def test_opt_in_purpose_with_nothing_on_file_is_denied_by_default(ct_chest):
    result = both(ct_chest, "ai-training", at(1))
    assert not result.allowed
    assert result.by_default_policy
    assert "opt-in" in result.reason


def test_opt_out_purpose_with_nothing_on_file_is_permitted_by_default(ct_chest):
    result = both(ct_chest, "education", at(1))
    assert result.allowed
    assert result.record_ids == ()
    assert "opt-out" in result.reason


# Step 1: newest record per (purpose, scope); times.

def test_a_permit_on_file_permits(ct_chest):
    record = make_record(ct_chest.patient, "ai-training", "permit", recorded=0)
    result = both(ct_chest, "ai-training", at(1))
    assert result.allowed
    assert result.record_ids == (record.pk,)
    assert f"record {record.pk}" in result.reason


def test_newest_record_for_the_same_scope_wins(ct_chest):
    make_record(ct_chest.patient, "ai-training", "permit", recorded=0)
    deny = make_record(ct_chest.patient, "ai-training", "deny", recorded=1)
    assert both(ct_chest, "ai-training", at(2)).record_ids == (deny.pk,)
    permit_again = make_record(ct_chest.patient, "ai-training", "permit", recorded=3)
    assert both(ct_chest, "ai-training", at(4)).record_ids == (permit_again.pk,)


def test_a_decision_replays_as_of_a_past_moment(ct_chest):
    permit = make_record(ct_chest.patient, "ai-training", "permit", recorded=0)
    make_record(ct_chest.patient, "ai-training", "deny", recorded=10)
    assert both(ct_chest, "ai-training", at(5)).record_ids == (permit.pk,)
    assert not both(ct_chest, "ai-training", at(-1)).record_ids  # before any record


def test_an_expired_record_drops_out_and_an_older_one_never_comes_back(ct_chest):
    make_record(ct_chest.patient, "education", "deny", recorded=0)
    make_record(ct_chest.patient, "education", "permit", recorded=1, expires=5)
    assert both(ct_chest, "education", at(3)).allowed  # the permit, in force
    after = both(ct_chest, "education", at(6))
    assert after.allowed and after.by_default_policy  # default opt-out, not the old deny


def test_a_change_dated_in_the_future_takes_over_only_when_it_starts(ct_chest):
    permit = make_record(ct_chest.patient, "ai-training", "permit", recorded=0)
    deny = make_record(ct_chest.patient, "ai-training", "deny", recorded=1, effective=5)
    assert both(ct_chest, "ai-training", at(2)).record_ids == (permit.pk,)
    assert both(ct_chest, "ai-training", at(5)).record_ids == (deny.pk,)


def test_expiry_is_exclusive_at_the_instant_it_expires(ct_chest):
    make_record(ct_chest.patient, "ai-training", "permit", recorded=0, expires=5)
    assert both(ct_chest, "ai-training", at(4.999)).allowed
    assert not both(ct_chest, "ai-training", at(5)).allowed


# Step 2: specificity of scope.

def test_study_scope_overrides_modality_which_overrides_all():
    patient = make_patient()
    mr = make_study(patient, ("MR", "HEAD"))
    ct = make_study(patient, ("CT", "CHEST"))
    make_record(patient, "ai-training", "permit")
    no_mr = make_record(patient, "ai-training", "deny", scope_kind="modality", scope_value="MR")
    assert both(ct, "ai-training", at(1)).allowed
    assert both(mr, "ai-training", at(1)).record_ids == (no_mr.pk,)
    this_one = make_record(patient, "ai-training", "permit", scope_kind="study",
                           scope_value=mr.study_uid, recorded=1)
    assert both(mr, "ai-training", at(2)).record_ids == (this_one.pk,)


def test_body_part_scope_matches_any_series_case_insensitively():
    patient = make_patient()
    mixed = make_study(patient, ("CT", "chest"), ("CT", "Head"))
    other = make_study(patient, ("CT", "ABDOMEN"))
    make_record(patient, "ai-training", "permit")
    no_head = make_record(patient, "ai-training", "deny", scope_kind="body_part",
                          scope_value="HEAD")
    assert both(mixed, "ai-training", at(1)).record_ids == (no_head.pk,)
    assert both(other, "ai-training", at(1)).allowed


# Step 2: specificity of purpose.

def test_a_deeper_purpose_overrides_its_ancestor(ct_chest):
    make_record(ct_chest.patient, "research", "deny")
    yes_ai = make_record(ct_chest.patient, "ai-training", "permit")
    assert not both(ct_chest, "research", at(1)).allowed
    assert both(ct_chest, "ai-training", at(1)).record_ids == (yes_ai.pk,)
    # A grandchild with no record of its own follows its nearest ancestor's record.
    assert both(ct_chest, "ai-training-commercial", at(1)).record_ids == (yes_ai.pk,)


def test_a_record_for_a_child_purpose_does_not_reach_its_parent(ct_chest):
    make_record(ct_chest.patient, "ai-training-commercial", "permit")
    assert both(ct_chest, "ai-training", at(1)).by_default_policy


def test_records_for_unrelated_purposes_do_not_count(ct_chest):
    make_record(ct_chest.patient, "education", "permit")
    make_record(ct_chest.patient, "external-sharing", "permit")
    assert both(ct_chest, "ai-training", at(1)).by_default_policy


# Step 3: incomparable records.

def test_incomparable_records_with_a_deny_give_deny():
    patient = make_patient()
    study = make_study(patient, ("MR", "HEAD"))
    # Study-level yes for research, all-studies no for AI training: neither is more
    # specific in both purpose and scope.
    permit = make_record(patient, "research", "permit", scope_kind="study",
                         scope_value=study.study_uid)
    deny = make_record(patient, "ai-training", "deny")
    result = both(study, "ai-training", at(1))
    assert not result.allowed
    assert result.record_ids == (deny.pk,)
    assert permit.pk not in result.record_ids


def test_modality_and_body_part_are_equally_specific_so_a_deny_among_them_wins():
    patient = make_patient()
    study = make_study(patient, ("MR", "HEAD"))
    make_record(patient, "ai-training", "permit", scope_kind="modality", scope_value="MR")
    deny = make_record(patient, "ai-training", "deny", scope_kind="body_part",
                       scope_value="HEAD")
    assert both(study, "ai-training", at(1)).record_ids == (deny.pk,)


def test_two_incomparable_permits_both_decide():
    patient = make_patient()
    study = make_study(patient, ("MR", "HEAD"))
    a = make_record(patient, "ai-training", "permit", scope_kind="modality", scope_value="MR")
    b = make_record(patient, "ai-training", "permit", scope_kind="body_part",
                    scope_value="HEAD")
    result = both(study, "ai-training", at(1))
    assert result.allowed and result.record_ids == (a.pk, b.pk)


# Other patients and fail closed.

def test_another_patients_records_never_count():
    mine, theirs = make_study(make_patient()), make_study(make_patient())
    make_record(theirs.patient, "ai-training", "permit")
    assert both(mine, "ai-training", at(1)).by_default_policy


def test_unreadable_consent_fails_closed():
    study = make_study(make_patient())
    make_record(study.patient, "education", "permit")
    with pytest.raises(RuntimeError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE consent_consentrecord RENAME TO consent_elsewhere")
        assert decide(study, "education", at(1)) == FAIL_CLOSED
        with pytest.raises(ConsentUnavailable):
            decide_many(ImagingStudy.objects.filter(pk=study.pk), "education", at(1))
        raise RuntimeError("roll the rename back")


def test_an_unknown_purpose_is_a_caller_error(ct_chest):
    with pytest.raises(LookupError):
        decide_many(ImagingStudy.objects.all(), "no-such-purpose", at(1))


@pytest.mark.parametrize("count", [10, 1000])
def test_decide_many_issues_a_constant_number_of_queries(count, django_assert_num_queries):
    patient = make_patient()
    studies = [ImagingStudy(study_uid=f"2.25.{count}.{n}", patient=patient)
               for n in range(count)]
    ImagingStudy.objects.bulk_create(studies)
    make_record(patient, "ai-training", "permit")
    with django_assert_num_queries(2):
        decisions = decide_many(ImagingStudy.objects.filter(patient=patient), "ai-training",
                                at(1))
    assert len(decisions) == count
    assert all(d.allowed for d in decisions.values())
