"""A synthetic hospital loaded straight into the database: patients, studies with series, and
consent records in realistic proportions, for the gate and check benchmarks.

On PostgreSQL the rows go in with COPY (the only way to load a million studies in a minute or
two); on SQLite, the embedded mode, with executemany (for a small ``scale`` only). Rows are
written below the services on purpose: the benchmark measures decisions over data, and
writing a million ledger events first would measure the ledger instead. So the consent rows
here have no vouching events, and ``verify_ledger`` on a benchmark database would name them;
the database is thrown away after the run.

Proportions (of patients) follow what a hospital sees: most never answered; some said yes or
no to AI training for everything; some said yes with an exception for one kind of scan, one
body region, or one study; some yes answers have expired. Everything is seeded, so a run
is repeatable.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

# Hospital scale (issue 15): 200,000 patients, 1,000,000 studies. ``scale`` multiplies both.
PATIENTS = 200_000
STUDIES = 1_000_000

# (share of patients, what they said about ai-training). The rest (~70 %) said nothing.
PROFILES = (
    (0.10, "permit"),             # yes to everything
    (0.05, "deny"),               # no to everything
    (0.05, "permit-except-ct"),   # yes, but not CT scans
    (0.04, "permit-except-head"),  # yes, but not scans of the head
    (0.03, "permit-except-study"),  # yes, but not one particular study
    (0.03, "expired-permit"),     # a yes that has run out
)
# (modality, body part as the tag says, share of series).
SERIES_KINDS = (("CT", "CHEST", 0.18), ("CT", "HEAD", 0.10), ("CT", "ABDOMEN", 0.08),
                ("MR", "BRAIN", 0.10), ("MR", "KNEE", 0.06), ("MR", "SPINE", 0.06),
                ("CR", "CHEST", 0.20), ("DX", "KNEE", 0.05), ("US", "ABDOMEN", 0.09),
                ("MG", "BREAST", 0.05), ("CT", "", 0.03))
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Hospital:
    patients: int
    studies: int
    series: int
    records: int
    seconds: float


def _anatomy(body_part: str) -> tuple[str, str, str]:
    from registry.vocabulary import anatomy_of

    found = anatomy_of(body_part=body_part, texts=[])
    return found.label, found.source, found.stored_regions


def load(*, scale: float = 1.0, seed: int = 15) -> Hospital:
    """Write the hospital into the (empty, migrated) database Django points at."""
    import time

    from django.db import connection

    from consent.models import ConsentForm, ConsentRecord, Purpose

    started = time.perf_counter()
    rng = random.Random(seed)
    n_patients = max(1, int(PATIENTS * scale))
    n_studies = max(n_patients, int(STUDIES * scale))
    ai = Purpose.objects.get(code="ai-training")
    form = ConsentForm.objects.order_by("-version").first()
    anatomy = {part: _anatomy(part) for _, part, _ in SERIES_KINDS}
    kinds = [(m, p) for m, p, _ in SERIES_KINDS]
    weights = [w for _, _, w in SERIES_KINDS]
    now = datetime.now(UTC)

    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM registry_patient")
        patient_base = cursor.fetchone()[0]
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM registry_imagingstudy")
        study_base = cursor.fetchone()[0]
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM registry_series")
        series_base = cursor.fetchone()[0]

    from registry.identifiers import mrn_digest
    from registry.models import ImagingStudy, Patient, age_on

    # Identifiers are stored encrypted, as the services store them (Fernet per value), with
    # the MRN's blind index; the age at each study is stored with the study.
    encrypted = {name: Patient._meta.get_field(name).get_prep_value
                 for name in ("mrn", "name", "birth_date")}

    def born(p: int) -> date:
        return date(1930, 1, 1) + timedelta(days=random.Random(seed * 7919 + p)
                                            .randrange(0, 365 * 90))

    def patients():
        for p in range(1, n_patients + 1):
            mrn = f"B{p:07d}"
            yield (patient_base + p, "BENCH", encrypted["mrn"](mrn), encrypted["name"](""),
                   encrypted["birth_date"](born(p)), rng.choice("FM"), now, mrn_digest(mrn))

    def uid(study_id: int) -> str:
        return f"2.25.15{seed}{study_id:09d}"

    def study_plan(s: int) -> tuple[int, int, list[tuple[str, str]], date]:
        # Its own generator per study, so the series pass draws the same series again
        # without a million studies held in memory between the two COPYs.
        own = random.Random(seed * 10_000_019 + s)
        # Every patient has at least one study (the s-th is patient s's); the rest are
        # spread at random.
        patient = patient_base + (s if s <= n_patients else own.randrange(1, n_patients + 1))
        chosen = own.choices(kinds, weights, k=own.choice((1, 1, 2, 2, 3)))
        return (study_base + s, patient, chosen,
                date(2005, 1, 1) + timedelta(days=own.randrange(0, 365 * 20)))

    def studies():
        for s in range(1, n_studies + 1):
            study_id, patient_id, chosen, on = study_plan(s)
            yield (study_id, uid(study_id), patient_id, blank_accession, "", on.isoformat(),
                   age_on(born(patient_id - patient_base), on), "",
                   "\\".join(dict.fromkeys(m for m, _ in chosen)),
                   "\\".join(dict.fromkeys(b for _, b in chosen if b)), len(chosen), 0, now)

    counted = {"series": 0, "records": 0}

    def series():
        series_id = series_base
        for s in range(1, n_studies + 1):
            study_id, _, chosen, _ = study_plan(s)
            for n, (modality, part) in enumerate(chosen):
                series_id += 1
                label, source, regions = anatomy[part]
                yield (series_id, f"{uid(study_id)}.{n}", study_id, modality, part, n + 1, "",
                       0, label, source, regions)
        counted["series"] = series_id - series_base

    def records():
        def record(patient_id: int, decision: str, kind: str = "all", value: str = "",
                   days: int = 0, lasts: timedelta | None = None) -> tuple:
            counted["records"] += 1
            recorded = T0 + timedelta(days=days, minutes=counted["records"])
            expires = recorded + lasts if lasts else None
            return (patient_id, ai.pk, decision, kind, value, recorded, expires, recorded,
                    "paper", "bench", blank_name, "", blank_name, form.pk, form.text_sha256,
                    "", "")

        for p in range(1, n_patients + 1):
            patient_id = patient_base + p
            draw, profile = rng.random(), None
            for share, name in PROFILES:
                if draw < share:
                    profile = name
                    break
                draw -= share
            if profile is None:
                continue
            if profile == "deny":
                yield record(patient_id, "deny")
                continue
            if profile == "expired-permit":
                yield record(patient_id, "permit", lasts=timedelta(days=30))
                continue
            yield record(patient_id, "permit")
            if profile == "permit-except-ct":
                yield record(patient_id, "deny", "modality", "CT", days=1)
            elif profile == "permit-except-head":
                yield record(patient_id, "deny", "body_part", "HEAD", days=1)
            elif profile == "permit-except-study":
                yield record(patient_id, "deny", "study", uid(study_base + p), days=1)

    _write(connection, "registry_patient",
           ("id", "issuer", "mrn", "name", "birth_date", "sex", "created_at", "mrn_index"),
           patients())
    blank_accession = ImagingStudy._meta.get_field("accession_number").get_prep_value("")
    # Proxy and witness names are encrypted too: blank ones as one token, as for accessions.
    blank_name = ConsentRecord._meta.get_field("proxy_name").get_prep_value("")
    _write(connection, "registry_imagingstudy",
           ("id", "study_uid", "patient_id", "accession_number", "accession_index",
            "study_date", "patient_age", "description",
            "modalities", "body_parts", "series_count", "instance_count", "registered_at"),
           studies())
    _write(connection, "registry_series",
           ("id", "series_uid", "study_id", "modality", "body_part", "series_number",
            "description", "instance_count", "anatomy", "anatomy_source", "anatomy_regions"),
           series())
    _write(connection, "consent_consentrecord",
           ("patient_id", "purpose_id", "decision", "scope_kind", "scope_value",
            "effective_from", "expires_at", "recorded_at", "source", "recorded_by_label",
            "proxy_name", "proxy_relationship", "witness", "form_id", "text_sha256",
            "attachment_sha256", "attachment_name"), records())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in ("registry_patient", "registry_imagingstudy", "registry_series"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT MAX(id) FROM {table}))")
            # Fresh statistics, as autovacuum would have after a load this size.
            cursor.execute("ANALYZE registry_patient, registry_imagingstudy, registry_series, "
                           "consent_consentrecord")
        else:
            cursor.execute("ANALYZE")
    return Hospital(n_patients, n_studies, counted["series"], counted["records"],
                    time.perf_counter() - started)


def _write(connection, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
    if connection.vendor == "postgresql":
        raw = connection.connection  # psycopg 3
        with raw.cursor() as cursor, cursor.copy(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                           list(rows))

