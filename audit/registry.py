"""How the ledger learns about patients without knowing the consent app: that app registers
a resolver (MRN -> patient references) when it starts, the way outbox handlers are."""

from collections.abc import Callable

PatientResolver = Callable[[str], list[str]]
PatientLabeler = Callable[[list[str]], dict[str, str]]

_resolver: PatientResolver | None = None
_labeler: PatientLabeler | None = None


def register_patients(*, resolver: PatientResolver, labeler: PatientLabeler) -> None:
    global _resolver, _labeler
    _resolver, _labeler = resolver, labeler


def patient_refs_for_mrn(mrn: str) -> list[str]:
    return _resolver(mrn) if _resolver else []


def patient_labels(refs: list[str]) -> dict[str, str]:
    return _labeler(refs) if _labeler and refs else {}
