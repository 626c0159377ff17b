"""How the ledger learns what higher layers know without importing them: the registry
registers a patient resolver (MRN -> patient references) and access registers who may read
the auditor console, each when its app starts, the way outbox handlers are."""

from collections.abc import Callable
from typing import Any

PatientResolver = Callable[[str], list[str]]
PatientLabeler = Callable[[list[str]], dict[str, str]]
AuditorCheck = Callable[[Any], bool]

_resolver: PatientResolver | None = None
_labeler: PatientLabeler | None = None
_auditor_check: AuditorCheck | None = None


def register_patients(*, resolver: PatientResolver, labeler: PatientLabeler) -> None:
    global _resolver, _labeler
    _resolver, _labeler = resolver, labeler


def patient_refs_for_mrn(mrn: str) -> list[str]:
    return _resolver(mrn) if _resolver else []


def patient_labels(refs: list[str]) -> dict[str, str]:
    return _labeler(refs) if _labeler and refs else {}


def register_auditor_check(check: AuditorCheck) -> None:
    global _auditor_check
    _auditor_check = check


def is_auditor(user: Any) -> bool:
    """Fails closed: with no rule registered, nobody reads the console."""
    return bool(_auditor_check and user.is_authenticated and _auditor_check(user))
