"""Registration of files as other software writes them, through to the database: a value
the header allows but a column cannot hold must not stop a batch."""

import pydicom

from audit.ledger import Actor
from registry.models import Instance, Series
from registry.registration import Status, dicom_ingest_paths

ACTOR = Actor(label="tester", role="staff")


def test_numbers_beyond_the_columns_range_are_left_out_not_fatal(db, corpus, tmp_path):
    """Series and Instance Number are IS: up to twelve characters, so beyond a 32-bit
    integer (PostgreSQL refused the whole batch: 'integer out of range')."""
    ds = pydicom.dcmread(corpus / "CT_small.dcm")
    ds.SeriesNumber = "999999999999"
    ds.InstanceNumber = "-99999999999"
    big = tmp_path / "big.dcm"
    ds.save_as(big)
    other = pydicom.dcmread(corpus / "MR_small.dcm")
    other.InstanceNumber = "2147483647"
    edge = tmp_path / "edge.dcm"
    other.save_as(edge)
    summary = dicom_ingest_paths(paths=[big, edge], actor=ACTOR, source="test")
    assert summary.counts == {Status.REGISTERED: 2}
    assert Instance.objects.get(sop_uid=ds.SOPInstanceUID).instance_number is None
    assert Series.objects.get(series_uid=ds.SeriesInstanceUID).series_number is None
    assert Instance.objects.get(sop_uid=other.SOPInstanceUID).instance_number == 2147483647
