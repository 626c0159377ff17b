"""The benchmark harness's command line, and the synthetic hospital it loads: on that
generated data the set-based gate must give exactly the Python rule's answers."""

from collections import Counter
from datetime import UTC, datetime

import pytest
from django.db import connection

from benchmarks import Measurement, hospital
from benchmarks import __main__ as bench
from consent.engine import PurposeTree, decide, decide_counts, decide_stream
from consent.models import ConsentRecord
from registry.models import ImagingStudy, Series


def test_help_lists_every_benchmark(capsys):
    with pytest.raises(SystemExit) as done:
        bench.parse_args(["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert all(name in shown for name in bench.BENCHMARKS)


@pytest.mark.parametrize("argv", [["nosuch"], ["gate", "--scale", "0"], ["--scale", "-1"],
                                  ["--scale", "many"], ["--sample", "0"], ["--rate", "-5"]])
def test_bad_arguments_are_refused_with_a_message(capsys, argv):
    with pytest.raises(SystemExit) as done:
        bench.parse_args(argv)
    assert done.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_names_pick_benchmarks_once_in_order_and_none_means_all():
    assert bench.parse_args(["gate", "checks", "gate"]).names == ["gate", "checks"]
    assert bench.parse_args([]).names == list(bench.BENCHMARKS)


def test_time_targets_are_ceilings():
    assert Measurement("t", 9.9, "s", target=10, at_most=True).verdict == "meets"
    assert Measurement("t", 10.1, "s", target=10, at_most=True).verdict == "MISSES"
    assert Measurement("r", 10.1, "x", target=10).verdict == "meets"


def test_the_gate_gives_the_python_rules_answers_over_the_generated_hospital(db):
    made = hospital.load(scale=0.001)  # 200 patients, 1,000 studies
    studies = ImagingStudy.objects.filter(patient__issuer="BENCH")
    assert studies.count() == made.studies == 1000
    assert Series.objects.filter(study__in=studies).count() == made.series
    kinds = Counter(ConsentRecord.objects.filter(patient__issuer="BENCH")
                    .values_list("scope_kind", flat=True))
    # Realistic proportions: some of every kind of choice, most patients none.
    assert {"all", "modality", "body_part", "study"} <= set(kinds)
    assert ConsentRecord.objects.filter(patient__issuer="BENCH").values(
        "patient").distinct().count() < made.patients / 2
    assert ConsentRecord.objects.filter(expires_at__isnull=False).exists()
    # Names stored as the services store them: encrypted (a token), reading back blank.
    some = ConsentRecord.objects.filter(patient__issuer="BENCH").first()
    assert (some.proxy_name, some.witness) == ("", "")
    with connection.cursor() as cursor:
        cursor.execute("SELECT proxy_name, witness FROM consent_consentrecord WHERE id = %s",
                       [some.pk])
        assert all(value.startswith("gAAAAA") for value in cursor.fetchone())
    tree = PurposeTree.load()
    now = datetime(2026, 6, 1, tzinfo=UTC)
    by_id = {s.pk: s for s in studies}
    outcomes = Counter()
    for answer in decide_stream(studies, "ai-training", now, tree=tree):
        expected = decide(by_id.pop(answer.study_id), "ai-training", now, tree=tree)
        assert answer.decision == expected
        outcomes[(expected.allowed, expected.by_default_policy)] += 1
    assert not by_id
    assert outcomes[(True, False)] and outcomes[(False, False)] and outcomes[(False, True)]
    counts = decide_counts(studies, "ai-training", now, tree=tree)
    assert counts.allowed == outcomes[(True, False)]
    assert counts.by_default == outcomes[(False, True)]
