"""Writes to what decides consent besides the records themselves: purposes (their policy
and place in the tree), consent form versions and guardianships. Each is one transaction
with its ledger event, which vouches for the row (audit/vouching.py). The admin writes
through these functions too (consent/admin.py)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit import ledger
from audit.ledger import Actor
from consent import events
from consent.engine import purpose_tree_changed
from consent.models import ConsentForm, Guardianship, Policy, Purpose
from registry.models import Patient

PURPOSE_FIELDS = ("name", "description", "parent", "default_policy", "duo_id", "position")


def _check_purpose(purpose: Purpose) -> None:
    if purpose.default_policy not in Policy.values:
        raise ValidationError({"default_policy": f"unknown policy {purpose.default_policy!r}"})
    seen = {purpose.pk} if purpose.pk else set()
    node = purpose.parent
    while node is not None:  # a purpose may not become its own ancestor
        if node.pk in seen:
            raise ValidationError({"parent": "this would make the purpose tree a cycle"})
        seen.add(node.pk)
        node = node.parent


@transaction.atomic
def purpose_create(*, code: str, name: str, description: str, default_policy: str,
                   actor: Actor, parent: Purpose | None = None, duo_id: str = "",
                   position: int = 0) -> Purpose:
    purpose = Purpose(code=code, name=name, description=description, parent=parent,
                      default_policy=default_policy, duo_id=duo_id, position=position)
    _check_purpose(purpose)
    purpose.save()
    ledger.record_drafts([events.purpose_saved(
        actor=actor, purpose=purpose, created=True,
        changes={f: [None, _plain(getattr(purpose, f))] for f in PURPOSE_FIELDS})])
    transaction.on_commit(purpose_tree_changed)
    return purpose


@transaction.atomic
def purpose_update(*, purpose: Purpose, actor: Actor, **changes: Any) -> Purpose:
    """Change a purpose's wording, policy or parent. Its code is its identity in the ledger
    and is never changed."""
    unknown = set(changes) - set(PURPOSE_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "cannot be changed"})
    current = Purpose.objects.select_for_update().get(pk=purpose.pk)
    changed = {field: [_plain(getattr(current, field)), _plain(value)]
               for field, value in changes.items() if getattr(current, field) != value}
    if not changed:
        return current
    for field, value in changes.items():
        setattr(current, field, value)
    _check_purpose(current)
    current.save(update_fields=list(changes))
    ledger.record_drafts([events.purpose_saved(actor=actor, purpose=current,
                                               changes=changed, created=False)])
    # Checks in every process decide with the changed tree once this commits.
    transaction.on_commit(purpose_tree_changed)
    return current


def _plain(value: Any) -> Any:
    return value.code if isinstance(value, Purpose) else value


@transaction.atomic
def consent_form_publish(*, code: str, title: str, text: str, actor: Actor) -> ConsentForm:
    """A new version of a consent text. Texts are never edited: a change is a version."""
    if not text.strip() or not title.strip():
        raise ValidationError({"text": "a consent form needs a title and a text"})
    last = (ConsentForm.objects.select_for_update().filter(code=code)
            .order_by("-version").first())
    form = ConsentForm.objects.create(
        code=code, version=(last.version + 1) if last else 1, title=title, text=text,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(), published_at=timezone.now())
    ledger.record_drafts([events.form_published(actor=actor, form=form)])
    return form


@transaction.atomic
def guardianship_create(*, patient: Patient, user: Any, relationship: str,
                        actor: Actor) -> Guardianship:
    """Let ``user`` make choices for ``patient`` (a parent, a legal guardian, a proxy)."""
    if not relationship.strip():
        raise ValidationError({"relationship": "say how the guardian is related"})
    if Guardianship.objects.filter(patient=patient, user=user).exists():
        raise ValidationError({"user": "this user is already a guardian of this patient"})
    guardianship = Guardianship.objects.create(patient=patient, user=user,
                                               relationship=relationship.strip())
    ledger.record_drafts([events.guardianship_granted(actor=actor,
                                                      guardianship=guardianship)])
    return guardianship


@transaction.atomic
def guardianship_end(*, guardianship: Guardianship, actor: Actor) -> None:
    ledger.record_drafts([events.guardianship_ended(actor=actor, guardianship=guardianship)])
    Guardianship.objects.filter(pk=guardianship.pk).delete()
