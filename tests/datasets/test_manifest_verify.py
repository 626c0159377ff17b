"""verify_manifest over a directory written by write_manifest: each way an export can be
damaged is named, and an intact one has no problem."""

import json

import pytest

from datasets.manifest import (
    MANIFEST_CSV,
    MANIFEST_JSON,
    SIGNATURE,
    verify_manifest,
    write_manifest,
)
from datasets.signing import published_keys


@pytest.fixture
def export(tmp_path):
    out = tmp_path / "export"
    (out / "2.25.1" / "2.25.2").mkdir(parents=True)
    (out / "2.25.1" / "2.25.2" / "a.dcm").write_bytes(b"first image")
    (out / "2.25.1" / "2.25.2" / "b.dcm").write_bytes(b"second image")
    write_manifest(out, {"dataset": 1, "version": 1})
    return out


def test_an_intact_export_has_no_problem(export):
    assert verify_manifest(export, published_keys()) == []


@pytest.mark.parametrize("name", [MANIFEST_JSON, SIGNATURE])
def test_a_missing_manifest_or_signature_is_named(export, name):
    (export / name).unlink()
    assert verify_manifest(export, published_keys()) == [f"missing {name}"]


def test_a_changed_manifest_breaks_the_signature(export):
    body = json.loads((export / MANIFEST_JSON).read_text())
    body["files"][0]["sha256"] = "0" * 64
    (export / MANIFEST_JSON).write_text(json.dumps(body, indent=2, sort_keys=True))
    assert verify_manifest(export, published_keys()) == [
        "the manifest's signature does not match: the manifest was changed"]


def test_a_manifest_that_is_not_json_is_unreadable(export):
    (export / MANIFEST_JSON).write_text("{not json")
    (problem,) = verify_manifest(export, published_keys())
    assert problem.startswith("unreadable manifest")


def test_a_changed_csv_is_named(export):
    with open(export / MANIFEST_CSV, "a") as handle:
        handle.write("extra.dcm,1,00\n")
    assert verify_manifest(export, published_keys()) == ["manifest.csv was changed"]


def test_a_missing_and_a_changed_file_are_each_named(export):
    (export / "2.25.1" / "2.25.2" / "a.dcm").unlink()
    (export / "2.25.1" / "2.25.2" / "b.dcm").write_bytes(b"second imagf")
    assert verify_manifest(export, published_keys()) == [
        "missing file 2.25.1/2.25.2/a.dcm", "changed file 2.25.1/2.25.2/b.dcm"]


def test_no_trusted_key_is_refused_whatever_the_export_carries(export):
    (problem,) = verify_manifest(export, {})
    assert "not a key you trust" in problem and "none given" in problem
