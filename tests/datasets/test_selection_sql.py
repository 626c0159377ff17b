"""Selection and the preview's safety facts computed by the database: each must equal the
per-study Python rule it replaced (age at the study; ``unsafe_reason`` and
``needs_pixel_check``), so a million studies can be selected and counted without one being
loaded into Python."""

import itertools
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.selection import (
    SAFETY_FLAGS,
    needs_pixel_check,
    safety_columns,
    safety_verdict,
    selected_studies,
    unsafe_reason,
)
from registry.models import ImagingStudy, Instance, Patient
from tests.consent.factories import make_series

_n = itertools.count()


def age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(dates | st.none(), dates | st.none()), min_size=1,
                      max_size=6),
       low=st.none() | st.integers(0, 130), high=st.none() | st.integers(0, 130))
def test_age_selection_in_sql_equals_age_in_years(db, django_assert_max_num_queries, pairs,
                                                  low, high):
    # Edge cases hypothesis may miss: the birthday itself, the day before, 29 February.
    pairs = [*pairs, (date(2000, 2, 29), date(2010, 2, 28)),
             (date(2000, 2, 29), date(2010, 3, 1)), (date(1990, 6, 15), date(2020, 6, 15)),
             (date(1990, 6, 15), date(2020, 6, 14))]
    studies = []
    issuer = f"AGE{next(_n)}"  # this example's patients only
    for born, on in pairs:
        patient = Patient.objects.create(issuer=issuer, mrn=f"A{next(_n)}", birth_date=born)
        studies.append(ImagingStudy.objects.create(study_uid=f"2.25.9{next(_n)}",
                                                   patient=patient, study_date=on))
    selection = {k: v for k, v in {"min_age": low, "max_age": high}.items() if v is not None}
    if not selection:
        selection = {"min_age": 0}
    with django_assert_max_num_queries(1):
        chosen = {s.pk for s in selected_studies(selection).filter(patient__issuer=issuer)}
    expected = {s.pk for s in studies
                if s.study_date and s.patient.birth_date
                and selection.get("min_age", -1000) <= age(s.patient.birth_date, s.study_date)
                <= selection.get("max_age", 1000)}
    assert chosen == expected, ([(s.patient.birth_date, s.study_date) for s in studies
                                 if s.pk in chosen ^ expected], selection)


SERIES = st.tuples(st.sampled_from(["CT", "MR", "PT", "US", "SR", "CR", "XA", "SRX"]),
                   st.sampled_from(["HEAD", "BRAIN", "CHEST", "KNEE", ""]),
                   st.lists(st.sampled_from(["YES", "NO", ""]), max_size=3))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(specs=st.lists(st.lists(SERIES, max_size=3), min_size=1, max_size=5),
       defaced=st.booleans(), redact=st.booleans())
def test_safety_facts_in_sql_equal_the_per_study_rule(db, specs, defaced, redact):
    patient = Patient.objects.create(issuer="SAFE", mrn=f"S{next(_n)}")
    studies = []
    for series_specs in specs:
        study = ImagingStudy.objects.create(
            study_uid=f"2.25.8{next(_n)}", patient=patient,
            modalities="\\".join(dict.fromkeys(m for m, _, _ in series_specs)))
        for modality, part, burned in series_specs:
            series = make_series(study, f"2.25.7{next(_n)}", modality, part)
            for value in burned:
                Instance.objects.create(sop_uid=f"2.25.6{next(_n)}", series=series,
                                        path="/nowhere", size=0, sha256="0" * 64,
                                        burned_in_annotation=value)
        studies.append((study, [v for _, _, b in series_specs for v in b]))
    rows = dict((pk, tuple(flags)) for pk, *flags in safety_columns(
        ImagingStudy.objects.filter(patient=patient)).values_list("pk", *SAFETY_FLAGS))
    for study, burned in studies:
        reason = unsafe_reason(study, burned, defaced_upstream=defaced, redact_text=redact)
        check = not reason and needs_pixel_check(study, burned)
        assert safety_verdict(rows[study.pk], defaced_upstream=defaced,
                              redact_text=redact) == (reason, check), study.modalities
