"""Datasets are rows the ledger vouches for (audit/vouching.py): what a dataset is for, who
gets it, what it selects, under which legal basis and where it is sent decide what leaves
the hospital."""

from __future__ import annotations

from typing import Any

from audit.vouching import VouchedTable, register_vouched
from datasets.models import Dataset, DatasetDestination, LegalBasisApproval

DATASET = "datasets.dataset"
APPROVAL = "datasets.legalbasisapproval"
DESTINATION = "datasets.datasetdestination"


def dataset_canonical(row: Dataset) -> dict[str, Any]:
    return {
        "name": row.name, "purpose": row.purpose_id, "owner": row.owner_id,
        "recipient": row.recipient, "description": row.description,
        "enforcement": row.enforcement, "irb_waiver": row.irb_waiver,
        "approving_body": row.approving_body, "approver": row.approver,
        "selection": row.selection, "deid_options": row.deid_options,
        "defaced_upstream": row.defaced_upstream, "burned_in_text": row.burned_in_text,
        "created_at": row.created_at,
    }


def approval_canonical(row: LegalBasisApproval) -> dict[str, Any]:
    return {
        "dataset": row.dataset_id, "decision": row.decision, "decided_by": row.decided_by_id,
        "legal_basis": row.legal_basis, "note": row.note, "decided_at": row.decided_at,
    }


def destination_canonical(row: DatasetDestination) -> dict[str, Any]:
    # Only attributes: the migration that vouches for rows written before this table was
    # vouched for (0008) digests its historical model's rows with this same function.
    return {"dataset": row.dataset_id, "name": row.name, "set_by": row.set_by,
            "set_at": row.set_at}


def register() -> None:
    register_vouched(VouchedTable(name=DATASET, label="dataset", model=Dataset,
                                  canonical=dataset_canonical))
    # A privacy officer's approval is what lets studies leave without consent.
    register_vouched(VouchedTable(name=APPROVAL, label="legal basis approval",
                                  model=LegalBasisApproval, canonical=approval_canonical))
    # Where versions go: a row changed behind the services' back would send studies to
    # a PACS nobody chose.
    register_vouched(VouchedTable(name=DESTINATION, label="dataset destination",
                                  model=DatasetDestination, canonical=destination_canonical))
