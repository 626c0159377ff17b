"""Every clause of DESIGN.md's consent decision rule, each on its own."""

from datetime import datetime, tzinfo

import pytest
from django.db import connection, transaction
from django.test import override_settings

from audit.ledger import Actor
from consent import engine
from consent.checks import consent_check
from consent.engine import (
    FAIL_CLOSED,
    ConsentUnavailable,
    PurposeTree,
    decide,
    decide_counts,
    decide_in_general,
    decide_many,
)
from consent.governance import purpose_create, purpose_update
from consent.models import ConsentRecord, Purpose
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


# Issue 13: a "no" matches what the patient meant, and unknown anatomy fails closed.

def test_a_moment_in_another_time_zone_is_the_same_instant_in_sql():
    """Reproduction: a deny recorded 2026-06-01 00:00Z, decided at 2026-05-31 17:00-08:00
    (01:00Z): decide said deny, decide_many on SQLite said permit by default policy."""
    from datetime import UTC, datetime, timedelta, timezone

    from tests.consent.factories import form, purpose

    study = make_study(make_patient(), ("CT", "CHEST"))
    consent_form = form()
    deny = ConsentRecord.objects.create(
        patient=study.patient, purpose=purpose("ai-training"), decision="deny",
        scope_kind="all", scope_value="", recorded_at=datetime(2026, 6, 1, tzinfo=UTC),
        effective_from=datetime(2026, 6, 1, tzinfo=UTC), source="staff",
        recorded_by_label="test", form=consent_form, text_sha256=consent_form.text_sha256)
    pacific = datetime(2026, 5, 31, 17, 0, tzinfo=timezone(timedelta(hours=-8)))
    result = both(study, "ai-training", pacific)
    assert not result.allowed and result.record_ids == (deny.pk,)
    # And one minute before the instant, nothing was on file yet, in any zone.
    before = datetime(2026, 5, 31, 15, 59, tzinfo=timezone(timedelta(hours=-8)))
    assert both(study, "ai-training", before).by_default_policy


def test_a_naive_moment_fails_closed():
    from datetime import datetime

    study = make_study(make_patient(), ("CT", "CHEST"))
    assert decide(study, "education", datetime(2026, 6, 1)) == FAIL_CLOSED  # noqa: DTZ001
    with pytest.raises(ConsentUnavailable):
        decide_many(ImagingStudy.objects.filter(pk=study.pk), "education",
                    datetime(2026, 6, 1))  # noqa: DTZ001


@pytest.mark.parametrize("value", ["head", "Head", "MRI", "BRAINZ", "KNEE", "HEAD "])
def test_the_database_refuses_a_scope_value_outside_the_vocabulary(value):
    from django.db import IntegrityError

    patient = make_patient()
    kind = "modality" if value == "MRI" else "body_part"
    with pytest.raises(IntegrityError), transaction.atomic():
        make_record(patient, "ai-training", "deny", scope_kind=kind, scope_value=value)


def test_newest_per_scope_groups_on_the_canonical_value():
    """The service stores "mri", "MR" and "MRI" as one scope, so the newest wins."""
    from consent.services import normalise_scope

    patient = make_patient()
    study = make_study(patient, ("MR", "BRAIN"))
    values = [normalise_scope(patient=patient, scope_kind="modality", scope_value=typed)
              for typed in ("mri", "MR", "Mri scan")]
    assert values == ["MR", "MR", "MR"]
    make_record(patient, "ai-training", "deny", scope_kind="modality", scope_value=values[0])
    permit = make_record(patient, "ai-training", "permit", scope_kind="modality",
                         scope_value=values[2], recorded=1)
    assert both(study, "ai-training", at(2)).record_ids == (permit.pk,)


@pytest.mark.parametrize(("body_part", "description"), [
    ("BRAIN", ""), ("SKULL", ""), ("HEAD", ""), ("ORBIT", ""), ("HEADNECK", ""),
    ("", "MR BRAIN WITHOUT CONTRAST"),
])
def test_a_no_to_head_and_brain_covers_every_name_of_the_head(body_part, description):
    """Reproduction: a paper "no to head scans" (HEAD) left an MR whose series say BRAIN
    allowed for AI training."""
    from tests.consent.factories import make_series

    patient = make_patient()
    study = ImagingStudy.objects.create(study_uid=f"1.2.826.0.9.{patient.pk}",
                                        patient=patient)
    make_series(study, f"{study.study_uid}.1", "MR", body_part, description=description)
    make_record(patient, "ai-training", "permit")
    no_head = make_record(patient, "ai-training", "deny", scope_kind="body_part",
                          scope_value="HEAD")
    result = both(study, "ai-training", at(1))
    assert not result.allowed and result.record_ids == (no_head.pk,)
    assert "scans of the head and brain" in result.reason
    assert "anatomy not recorded" not in result.reason


def test_a_no_to_head_and_brain_matches_a_series_with_unknown_anatomy():
    patient = make_patient()
    unknown = make_study(patient, ("CR", ""))
    chest = make_study(patient, ("CR", "CHEST"))
    make_record(patient, "ai-training", "permit")
    no_head = make_record(patient, "ai-training", "deny", scope_kind="body_part",
                          scope_value="HEAD")
    result = both(unknown, "ai-training", at(1))
    assert not result.allowed and result.record_ids == (no_head.pk,)
    assert ("anatomy not recorded, so the no to scans of the head and brain may apply"
            in result.reason)
    assert both(chest, "ai-training", at(1)).allowed


def test_one_unknown_series_is_enough_for_a_no_to_match():
    patient = make_patient()
    study = make_study(patient, ("CT", "CHEST"), ("CT", ""))
    no_head = make_record(patient, "ai-training", "deny", scope_kind="body_part",
                          scope_value="HEAD")
    make_record(patient, "ai-training", "permit")
    assert both(study, "ai-training", at(1)).record_ids == (no_head.pk,)


def test_a_study_without_series_has_unknown_anatomy():
    patient = make_patient()
    study = ImagingStudy.objects.create(study_uid="1.2.826.0.8.1", patient=patient)
    no_chest = make_record(patient, "education", "deny", scope_kind="body_part",
                           scope_value="CHEST")
    assert both(study, "education", at(1)).record_ids == (no_chest.pk,)


def test_a_yes_for_a_region_never_covers_unknown_anatomy():
    patient = make_patient()
    unknown = make_study(patient, ("US", ""))
    head = make_study(patient, ("MR", "BRAIN"))
    yes_head = make_record(patient, "ai-training", "permit", scope_kind="body_part",
                           scope_value="HEAD")
    assert both(unknown, "ai-training", at(1)).by_default_policy
    assert both(head, "ai-training", at(1)).record_ids == (yes_head.pk,)


def test_a_yes_for_one_region_does_not_cover_a_series_spanning_two():
    patient = make_patient()
    head_neck = make_study(patient, ("CT", "HEADNECK"))
    yes_head = make_record(patient, "ai-training", "permit", scope_kind="body_part",
                           scope_value="HEAD")
    assert both(head_neck, "ai-training", at(1)).by_default_policy
    no_neck = make_record(patient, "ai-training", "deny", scope_kind="body_part",
                          scope_value="NECK", recorded=1)
    assert both(head_neck, "ai-training", at(2)).record_ids == (no_neck.pk,)
    assert yes_head.pk


def test_a_no_to_x_rays_covers_computed_and_digital_radiographs():
    patient = make_patient()
    cr, dx, ct = (make_study(patient, (m, "CHEST")) for m in ("CR", "DX", "CT"))
    make_record(patient, "research", "permit")
    no_xray = make_record(patient, "research", "deny", scope_kind="modality",
                          scope_value="XRAY")
    assert both(cr, "research", at(1)).record_ids == (no_xray.pk,)
    assert both(dx, "research", at(1)).record_ids == (no_xray.pk,)
    assert both(ct, "research", at(1)).allowed
    assert "X-ray scans" in both(cr, "research", at(1)).reason


def test_a_kind_of_scan_named_with_a_body_part_is_refused():
    """Reproduction: the portal saved "a kind of scan" with "Chest" as a modality scope
    that matched nothing."""
    from django.core.exceptions import ValidationError

    from consent.services import normalise_scope

    with pytest.raises(ValidationError) as refused:
        normalise_scope(patient=make_patient(), scope_kind="modality", scope_value="CHEST")
    assert "scope_value" in refused.value.message_dict


# The purpose tree: read once per batch, kept per process for single checks.

ACTOR = Actor.system("test")


def test_a_tree_handed_in_is_used_rather_than_read_again(ct_chest,
                                                         django_assert_num_queries):
    """A caller deciding many things loads the purpose tree once and passes it: each answer
    then reads the study's series and the patient's records, never the purposes again."""
    tree = PurposeTree.load()
    with django_assert_num_queries(2):
        decide(ct_chest, "ai-training", at(1), tree=tree)
    with django_assert_num_queries(1):
        decide_in_general(ct_chest.patient_id, "ai-training", at(1), tree=tree)
    with django_assert_num_queries(1):
        decide_many(ImagingStudy.objects.filter(pk=ct_chest.pk), "ai-training", at(1),
                    tree=tree)


def test_counting_with_a_tree_handed_in_reads_no_purposes(ct_chest, django_assert_num_queries):
    """The export preview and the gate count a whole selection with the tree they hold."""
    tree = PurposeTree.load()
    # (PostgreSQL: JIT turned off around the counting statement and back on, two more.)
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 1):
        counts = decide_counts(ImagingStudy.objects.filter(pk=ct_chest.pk), "ai-training",
                               at(1), tree=tree)
    assert (counts.by_default, counts.allowed) == (1, 0)


def test_a_purpose_change_through_the_service_reaches_the_next_check(
        django_capture_on_commit_callbacks):
    patient = make_patient()
    study = make_study(patient)
    purpose = Purpose.objects.get(code="education")
    first = consent_check(purpose_code="education", at=at(1), actor=ACTOR,
                          study_uids=[study.study_uid])
    with django_capture_on_commit_callbacks(execute=True):
        purpose_update(purpose=purpose, actor=ACTOR,
                       default_policy="opt-in" if purpose.default_policy == "opt-out"
                       else "opt-out")
    second = consent_check(purpose_code="education", at=at(1), actor=ACTOR,
                           study_uids=[study.study_uid])
    assert first.answers[0].decision.allowed != second.answers[0].decision.allowed


def test_a_new_purpose_and_a_cleared_cache_are_read_afresh(
        django_capture_on_commit_callbacks):
    from django.core.cache import cache

    engine.cached_purpose_tree()
    with django_capture_on_commit_callbacks(execute=True):
        child = purpose_create(code="edu-child", name="Child", description="d",
                               default_policy="opt-out", actor=ACTOR,
                               parent=Purpose.objects.get(code="education"))
    assert engine.cached_purpose_tree().get("edu-child").pk == child.pk
    # A new purpose written without the service (a data migration): the asked code is
    # missing from the cached tree, so it is read again.
    Purpose.objects.create(code="raw-one", name="Raw", description="d",
                           default_policy="opt-in")
    assert engine.cached_purpose_tree("raw-one").get("raw-one").name == "Raw"
    held = engine.cached_purpose_tree()
    cache.clear()
    assert engine.cached_purpose_tree() is not held


def test_the_kept_tree_is_reused_until_it_is_older_than_its_age_limit(monkeypatch):
    """A purpose edited outside the services (a data migration) announces nothing: the kept
    tree is reused, then read again once older than TREE_MAX_AGE."""
    held = engine.cached_purpose_tree()
    assert engine.cached_purpose_tree() is held
    assert engine.cached_purpose_tree("education") is held
    Purpose.objects.filter(code="education").update(name="Teaching, renamed")
    assert engine.cached_purpose_tree().get("education").name != "Teaching, renamed"
    monkeypatch.setattr(engine, "TREE_MAX_AGE", 0.0)
    fresh = engine.cached_purpose_tree()
    assert fresh is not held and fresh.get("education").name == "Teaching, renamed"


# A Redis nobody listens on: every cache call fails at once (connection refused).
UNREACHABLE = {"default": {"BACKEND": "config.cache.ConsentryRedisCache",
                           "LOCATION": "redis://127.0.0.1:9/0"}}


def test_without_the_shared_cache_the_tree_is_read_for_every_check(caplog):
    engine.cached_purpose_tree()
    with override_settings(CACHES=UNREACHABLE):
        Purpose.objects.filter(code="education").update(name="Teaching, renamed")
        first = engine.cached_purpose_tree()
        assert first.get("education").name == "Teaching, renamed"
        assert engine.cached_purpose_tree() is not first
        engine.purpose_tree_changed()  # cannot announce: forgets this process's copy
    logged = {r.getMessage(): r for r in caplog.records if r.name == "consent.engine"}
    # Each with the cache's own error, which says what is wrong with it.
    for message in ("purpose tree version unreadable; reading the tree",
                    "could not announce a purpose tree change"):
        assert "Connection refused" in str(logged[message].exc_info[1]), message
    assert engine._tree_cache == {}


def test_a_change_announced_reaches_a_process_holding_the_old_tree():
    held = engine.cached_purpose_tree()
    Purpose.objects.filter(code="education").update(name="Teaching, renamed")
    engine.purpose_tree_changed()
    fresh = engine.cached_purpose_tree()
    assert fresh is not held and fresh.get("education").name == "Teaching, renamed"
    assert engine.cached_purpose_tree() is fresh


# The reason: the sentence staff read at the desk and patients in their history.

def test_the_reason_names_each_deciding_record_in_words():
    Purpose.objects.create(code="teach-ai", name="Training AI tools", description="d",
                           default_policy="opt-in")
    Purpose.objects.create(code="teach-all", name="Teaching", description="d",
                           default_policy="opt-out")
    patient = make_patient()
    study = make_study(patient, ("CR", "CHEST"), ("CT", ""))
    mr = make_study(patient, ("MR", "HEAD"))
    assert both(study, "teach-ai", at(1)).reason == (
        "Not allowed: no choice on file for training AI tools, which needs the patient's "
        "yes (opt-in).")
    assert both(study, "teach-all", at(1)).reason == (
        "Allowed: no choice on file for teaching, which is allowed unless the patient says "
        "no (opt-out).")
    yes = make_record(patient, "teach-ai", "permit")
    assert both(study, "teach-ai", at(1)).reason == (
        f"Allowed: the patient said yes to training AI tools for all scans "
        f"(record {yes.pk}, 2026-06-01).")
    yes_ct = make_record(patient, "teach-all", "permit", scope_kind="modality",
                         scope_value="CT", recorded=2)
    yes_xray = make_record(patient, "teach-all", "permit", scope_kind="modality",
                           scope_value="XRAY", recorded=2)
    assert both(study, "teach-all", at(3)).reason == (
        f"Allowed: the patient said yes to teaching for CT scans (record {yes_ct.pk}, "
        f"2026-06-03); the patient said yes to teaching for X-ray scans "
        f"(record {yes_xray.pk}, 2026-06-03).")
    yes_this = make_record(patient, "teach-all", "permit", scope_kind="study",
                           scope_value=study.study_uid, recorded=3)
    assert both(study, "teach-all", at(4)).reason == (
        f"Allowed: the patient said yes to teaching for this study "
        f"(record {yes_this.pk}, 2026-06-04).")
    no_xray = make_record(patient, "teach-ai", "deny", scope_kind="modality",
                          scope_value="XRAY", recorded=4)
    no_chest = make_record(patient, "teach-ai", "deny", scope_kind="body_part",
                           scope_value="CHEST", recorded=4)
    assert both(study, "teach-ai", at(5)).reason == (
        f"Not allowed: the patient said no to training AI tools for X-ray scans "
        f"(record {no_xray.pk}, 2026-06-05); the patient said no to training AI tools for "
        f"scans of the chest, lungs and heart (record {no_chest.pk}, 2026-06-05).")
    unknown = make_study(patient, ("US", ""))
    assert both(unknown, "teach-ai", at(5)).reason == (
        f"Not allowed: the patient said no to training AI tools for scans of the chest, "
        f"lungs and heart (record {no_chest.pk}, 2026-06-05; anatomy not recorded, so the "
        f"no to scans of the chest, lungs and heart may apply).")
    assert both(mr, "teach-ai", at(5)).reason == (
        f"Allowed: the patient said yes to training AI tools for all scans "
        f"(record {yes.pk}, 2026-06-01).")


def test_an_unknown_purpose_or_a_moment_without_a_zone_is_refused_by_name(ct_chest):
    with pytest.raises(LookupError, match=r"^unknown purpose 'no-such-use'$"):
        PurposeTree.load().get("no-such-use")

    class NoOffset(tzinfo):
        """A zone that cannot say its offset: the moment is not a moment."""

        def utcoffset(self, dt):
            return None

    naive = datetime(2026, 6, 2, 12, 0)  # noqa: DTZ001 - the point of the test
    for moment in (naive, naive.replace(tzinfo=NoOffset())):
        with pytest.raises(ValueError, match=r"^a decision needs an aware moment, not "):
            engine.utc(moment)
        assert decide(ct_chest, "ai-training", moment) == FAIL_CLOSED
