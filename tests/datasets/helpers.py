"""Shared steps of the export tests."""

from django.contrib.auth import get_user_model

from access.roles import Role
from audit.ledger import Actor
from consent.models import Purpose
from datasets.approvals import legal_basis_decide
from datasets.exports import dataset_create, export_request
from datasets.models import VersionStudy
from tests.conftest import make_user

STEWARD = Actor(label="stella", role="steward")


def make_dataset(steward, **kwargs):
    fields = {"name": "Chest AI", "purpose": Purpose.objects.get(code="ai-training"),
              "owner": steward, "recipient": "Acme AI Lab", "actor": STEWARD,
              "selection": {"date_from": "2025-01-01"}}
    return dataset_create(**{**fields, **kwargs})


def run_export(dataset, django_capture_on_commit_callbacks):
    """Request a version and run it (inline Celery) as the commit would."""
    with django_capture_on_commit_callbacks(execute=True):
        version = export_request(dataset=dataset, actor=STEWARD)
    version.refresh_from_db()
    return version


def fates(version):
    return {f.study.description: (f.included, f.reason) for f in
            VersionStudy.objects.filter(version=version).select_related("study")}


def make_log_only(steward, **kwargs):
    """A log-only dataset with a legal basis, approved by a second person."""
    dataset = make_dataset(steward, enforcement="log-only", irb_waiver="W-1",
                           approving_body="Ethics Board", approver="Dr Q", **kwargs)
    officer = get_user_model().objects.filter(username="olga-privacy").first() or make_user(
        "olga-privacy", Role.PRIVACY_OFFICER)
    legal_basis_decide(dataset=dataset, user=officer, decision="approved",
                       actor=Actor(label=officer.username, role=Role.PRIVACY_OFFICER))
    return dataset
