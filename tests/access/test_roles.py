"""Roles and their grants: scopes follow roles, grants and revocations are ledger events,
and doing either twice changes nothing the second time."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group

from access.grants import role_grant, role_revoke, roles_set
from access.roles import (
    Role,
    allowed_scopes,
    has_role,
    is_privileged,
    person_actor,
    primary_role,
    user_roles,
)
from audit.ledger import Actor
from audit.models import AuditEvent
from tests.conftest import make_user

ADMIN = Actor(label="admin", role="admin")


def test_nobody_signed_in_has_no_role_and_no_scope():
    anonymous = AnonymousUser()
    assert user_roles(anonymous) == set()
    assert not has_role(anonymous, Role.STAFF, Role.AUDITOR)
    assert allowed_scopes(anonymous) == frozenset()


def test_a_deactivated_user_keeps_roles_but_loses_every_scope(db):
    user = make_user("sam", Role.STAFF)
    assert "consent:write" in allowed_scopes(user)
    user.is_active = False
    assert has_role(user, Role.STAFF)
    assert allowed_scopes(user) == frozenset()


def test_granting_a_role_twice_writes_one_event(db):
    user = make_user("ann")
    assert role_grant(user=user, role=Role.AUDITOR, actor=ADMIN) is True
    assert role_grant(user=user, role=Role.AUDITOR, actor=ADMIN) is False
    assert AuditEvent.objects.filter(action="role.granted").count() == 1
    assert user_roles(user) == {Role.AUDITOR}


def test_revoking_a_role_not_held_changes_nothing(db):
    user = make_user("ben", Role.STAFF)
    before = AuditEvent.objects.count()
    assert role_revoke(user=user, role=Role.AUDITOR, actor=ADMIN) is False
    assert role_revoke(user=user, role="no-such-role", actor=ADMIN) is False
    assert AuditEvent.objects.count() == before
    assert user_roles(user) == {Role.STAFF}


def test_setting_roles_revokes_and_grants_one_at_a_time(db):
    user = make_user("cat", Role.STAFF)
    auditor = Group.objects.get_or_create(name=Role.AUDITOR)[0]
    roles_set(user=user, groups=[auditor], actor=ADMIN)
    assert user_roles(user) == {Role.AUDITOR}
    assert "consent:write" not in allowed_scopes(user)
    actions = list(AuditEvent.objects.filter(action__startswith="role.").order_by("pk")
                   .values_list("action", flat=True))
    assert actions == ["role.granted", "role.revoked", "role.granted"]


def test_roles_are_read_once_per_user_object(db, django_assert_num_queries):
    """A request asks several times (middleware, permissions, pages); one query answers."""
    user = get_user_model().objects.get(pk=make_user("dan", Role.STAFF).pk)
    with django_assert_num_queries(1):
        assert user_roles(user) == {Role.STAFF}
    with django_assert_num_queries(0):
        assert user_roles(user) == {Role.STAFF}
        assert has_role(user, Role.STAFF)


@pytest.mark.parametrize(("roles", "expected"), [
    ((Role.STAFF, Role.AUDITOR), "auditor"),
    ((Role.STAFF, Role.PRIVACY_OFFICER), "privacy-officer"),
    ((Role.STAFF, Role.STEWARD), "steward"),
    ((Role.PATIENT, Role.STAFF), "staff"),
    ((Role.PATIENT,), "patient"),
    ((), ""),
])
def test_the_ledger_names_the_most_accountable_role_a_person_holds(db, roles, expected):
    user = make_user("eve")
    for role in roles:
        role_grant(user=user, role=role, actor=ADMIN)
    assert primary_role(user) == expected


def test_an_admin_without_a_role_is_named_admin_and_nobody_is_named_nothing(db):
    admin = make_user("root")
    admin.is_superuser = True
    assert primary_role(admin) == "admin"
    assert primary_role(AnonymousUser()) == ""


def test_privileged_roles_and_either_admin_flag_need_a_second_factor(db):
    assert not is_privileged(AnonymousUser())
    assert not is_privileged(make_user("pat", Role.PATIENT))
    assert is_privileged(make_user("aud", Role.AUDITOR))
    superuser, staff_flag = make_user("su"), make_user("flag")
    superuser.is_superuser = True
    staff_flag.is_staff = True
    assert is_privileged(superuser) and is_privileged(staff_flag)


def test_a_page_request_is_recorded_as_the_signed_in_person_and_their_address(db, rf):
    user = make_user("fay", Role.STEWARD)
    request = rf.get("/", REMOTE_ADDR="192.0.2.9")
    request.user = user
    assert person_actor(request) == Actor(label="fay", role="steward", user_id=user.pk,
                                          ip="192.0.2.9")
