"""Role grants: a user's membership of a group (roles are groups, access/roles.py). Each
grant and revocation is one transaction with a ledger event that vouches for the
membership row (audit/vouching.py), so a role slipped in behind the application's back is
named by ``verify_ledger``. The admin's user page writes through ``roles_set``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from audit import ledger
from audit.ledger import Actor
from audit.vouching import VouchedTable, register_vouched, unvouch, vouch, vouched_details

ROLE_GRANT = "access.role_grant"


def _membership_model() -> Any:
    return get_user_model().groups.through


def _event(*, action: str, actor: Actor, user: Any, group: Group, vouched: dict) -> None:
    ledger.record(action=action, actor=actor,
                  details=vouched_details({"user": user.pk, "username": user.get_username(),
                                           "role": group.name}, vouched))


@transaction.atomic
def role_grant(*, user: Any, role: str | Group, actor: Actor) -> bool:
    """Give ``user`` the role (a group, made if missing). False if they already had it."""
    group = role if isinstance(role, Group) else Group.objects.get_or_create(name=role)[0]
    membership, created = _membership_model().objects.get_or_create(user_id=user.pk,
                                                                     group_id=group.pk)
    if created:
        _event(action="role.granted", actor=actor, user=user, group=group,
               vouched=vouch(table=ROLE_GRANT, row=membership))
        user.__dict__.pop("_consentry_roles", None)
    return created


@transaction.atomic
def role_revoke(*, user: Any, role: str | Group, actor: Actor) -> bool:
    """Take the role away; its API tokens stop working at once (scopes are checked against
    roles on every request). False if the user did not have it."""
    group = role if isinstance(role, Group) else Group.objects.filter(name=role).first()
    membership = group and _membership_model().objects.filter(
        user_id=user.pk, group_id=group.pk).first()
    if not membership:
        return False
    _event(action="role.revoked", actor=actor, user=user, group=group,
           vouched=unvouch(table=ROLE_GRANT, row_id=membership.pk))
    membership.delete()
    user.__dict__.pop("_consentry_roles", None)
    return True


@transaction.atomic
def roles_set(*, user: Any, groups: Iterable[Group], actor: Actor) -> None:
    """Make the user's groups exactly ``groups``, one grant or revocation at a time."""
    wanted = {group.pk: group for group in groups}
    held = {group.pk: group for group in user.groups.all()}
    for pk in sorted(held.keys() - wanted.keys()):
        role_revoke(user=user, role=held[pk], actor=actor)
    for pk in sorted(wanted.keys() - held.keys()):
        role_grant(user=user, role=wanted[pk], actor=actor)


def register() -> None:
    register_vouched(VouchedTable(
        name=ROLE_GRANT, label="role grant", model=_membership_model(),
        canonical=lambda row: {"user": row.user_id, "group": row.group_id}))
