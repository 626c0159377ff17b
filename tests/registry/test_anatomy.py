"""Each series' anatomy as registration reads it from real DICOM files (pydicom's own test
files, rewritten with new UIDs): Body Part Examined, else Anatomic Region Sequence, else the
descriptions and protocol name, else unknown; stored with its source."""

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from audit.ledger import Actor
from registry.dicom import read_header
from registry.models import Series
from registry.registration import dicom_ingest_paths

pytestmark = pytest.mark.django_db


def write(corpus, tmp_path, template="MR_small.dcm", *, body_part=None, codes=(),
          series_description="", study_description="", protocol=""):
    """A copy of a corpus file with new UIDs and the given anatomy attributes only."""
    ds = pydicom.dcmread(corpus / template)
    for keyword in ("BodyPartExamined", "AnatomicRegionSequence", "SeriesDescription",
                    "StudyDescription", "ProtocolName"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    if body_part is not None:
        ds.BodyPartExamined = body_part
    if codes:
        items = []
        for scheme, value, meaning in codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = (
                value, scheme, meaning)
            items.append(item)
        ds.AnatomicRegionSequence = items
    for keyword, value in (("SeriesDescription", series_description),
                           ("StudyDescription", study_description),
                           ("ProtocolName", protocol)):
        if value:
            setattr(ds, keyword, value)
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def registered(path):
    summary = dicom_ingest_paths(paths=[path], actor=Actor.system("test"), source="test")
    assert summary.counts["registered"] == 1, summary.problems
    header = read_header(path)
    return Series.objects.get(series_uid=header.series_uid)


def test_body_part_examined_is_read_first(corpus, tmp_path):
    series = registered(write(corpus, tmp_path, body_part="brain",
                              codes=[("SCT", "72696002", "Knee")],
                              series_description="CHEST"))
    assert (series.anatomy, series.anatomy_source, series.anatomy_regions) == (
        "BRAIN", "tag", "|HEAD|")
    assert series.body_part == "BRAIN"  # the tag as sent, upper-cased


def test_anatomic_region_codes_are_read_without_body_part(corpus, tmp_path):
    path = write(corpus, tmp_path, template="CT_small.dcm",
                 codes=[("SCT", "774007", "Head and Neck")], series_description="CHEST")
    assert read_header(path).anatomic_region_codes == (("SCT", "774007"),)
    series = registered(path)
    assert (series.anatomy, series.anatomy_source, series.anatomy_regions) == (
        "HEADNECK", "code", "|HEAD|NECK|")


def test_legacy_snomed_rt_codes_are_read_too(corpus, tmp_path):
    series = registered(write(corpus, tmp_path, codes=[("SRT", "T-A0100", "Brain")]))
    assert (series.anatomy_source, series.anatomy_regions) == ("code", "|HEAD|")


def test_descriptions_and_protocol_name_are_read_last(corpus, tmp_path):
    series = registered(write(corpus, tmp_path, series_description="AX T2",
                              study_description="MR BRAIN W/O", protocol="ROUTINE"))
    assert (series.anatomy, series.anatomy_source, series.anatomy_regions) == (
        "BRAIN", "description", "|HEAD|")
    series = registered(write(corpus, tmp_path, protocol="CAP thorax"))
    assert (series.anatomy, series.anatomy_source) == ("CHEST", "description")


def test_a_file_that_names_no_anatomy_is_unknown(corpus, tmp_path):
    series = registered(write(corpus, tmp_path, body_part="", series_description="SCOUT"))
    assert (series.anatomy, series.anatomy_source, series.anatomy_regions) == (
        "", "unknown", "")


def test_broken_anatomy_attributes_are_read_as_unknown_not_rejected(corpus, tmp_path):
    path = write(corpus, tmp_path, body_part="\x00??", codes=[("", "", "")],
                 series_description="%%%")
    series = registered(path)
    assert series.anatomy_source == "unknown"


def test_pydicoms_own_files_without_body_part_are_unknown(corpus):
    # CT_small.dcm carries no Body Part Examined, no region codes and no description.
    header = read_header(corpus / "CT_small.dcm")
    assert header.body_part == "" and header.anatomic_region_codes == ()
    series = registered(corpus / "CT_small.dcm")
    assert series.anatomy_source in ("unknown", "description")
