"""How the ledger learns what higher layers know without importing them: the registry
registers a patient resolver (MRN -> patient references), datasets registers dataset names
and access registers who may read the auditor console, each when its app starts, the way
outbox handlers are."""

from collections.abc import Callable
from typing import Any

PatientResolver = Callable[[str], list[str]]
PatientLabeler = Callable[[list[str]], dict[str, str]]
AuditorCheck = Callable[[Any], bool]
DatasetLabeler = Callable[[list[str]], dict[str, str]]

_resolver: PatientResolver | None = None
_labeler: PatientLabeler | None = None
_auditor_check: AuditorCheck | None = None
_dataset_labeler: DatasetLabeler | None = None


def register_patients(*, resolver: PatientResolver, labeler: PatientLabeler) -> None:
    global _resolver, _labeler
    _resolver, _labeler = resolver, labeler


def patient_refs_for_mrn(mrn: str) -> list[str]:
    return _resolver(mrn) if _resolver else []


def patient_labels(refs: list[str]) -> dict[str, str]:
    return _labeler(refs) if _labeler and refs else {}


def register_datasets(*, labeler: DatasetLabeler) -> None:
    global _dataset_labeler
    _dataset_labeler = labeler


def dataset_labels(refs: list[str]) -> dict[str, str]:
    """Dataset references -> their names; a reference with no dataset (or no labeler
    registered) is simply missing, and the caller names it by its number."""
    return _dataset_labeler(refs) if _dataset_labeler and refs else {}


def register_auditor_check(check: AuditorCheck) -> None:
    global _auditor_check
    _auditor_check = check


def is_auditor(user: Any) -> bool:
    """Fails closed: with no rule registered, nobody reads the console."""
    return bool(_auditor_check and user.is_authenticated and _auditor_check(user))
