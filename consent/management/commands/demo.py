from base64 import b32encode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from access.grants import role_grant
from access.models import ApiToken, TokenScope
from access.roles import Role
from access.tokens import api_token_create, api_token_revoke
from audit.ledger import Actor
from consent.models import Purpose
from consent.selectors import current_form
from consent.services import consent_record, disclosure_record
from registry.demo import DEMO_MRN_PREFIX, synthetic_patients, write_hospital
from registry.models import ImagingStudy, Patient
from registry.registration import dicom_ingest_paths
from registry.selectors import patient_search

# Hex of a made-up 20-byte key: 32 base32 letters with no padding, as every app accepts.
DEMO_TOTP_KEY = "636f6e73656e7472792d64656d6f2d6b65792d31"
DEMO_TOKEN_NAME = "demo AI platform"  # noqa: S105 - a label, not a secret
DEMO_ACCOUNTS = (
    # username, role, password, what they can try
    ("patient", Role.PATIENT, "demo-patient-pass", "the patient portal (first demo patient)"),
    ("staff", Role.STAFF, "demo-staff-pass", "the staff desk and the API"),
    ("steward", Role.STEWARD, "demo-steward-pass", "datasets and exports"),
    ("auditor", Role.AUDITOR, "demo-auditor-pass", "the ledger, read-only"),
    ("privacy", Role.PRIVACY_OFFICER, "demo-privacy-pass",
     "approves log-only datasets (a second person)"),
    ("admin", None, "demo-admin-pass", "Django administration"),
)


def demo_totp_secret() -> str:
    """The demo key as authenticator apps take it (base32)."""
    return b32encode(bytes.fromhex(DEMO_TOTP_KEY)).decode().rstrip("=")


def _demo_patients():
    """The synthetic patients, found by the blind index of their MRNs' common prefix (the
    MRNs themselves are encrypted)."""
    return patient_search(query=DEMO_MRN_PREFIX)


def _first_demo_patient() -> Patient | None:
    return min(_demo_patients(), key=lambda p: p.mrn, default=None)


class Command(BaseCommand):
    help = "Seed a synthetic hospital (no real patients) and the demo accounts."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=20,
                            help="how many synthetic patients (default 20)")

    def handle(self, *args, patients, **options):
        if not 1 <= patients <= 100_000:
            raise CommandError("--patients must be between 1 and 100000")
        if _demo_patients().exists():
            self.stdout.write("The demo hospital is already seeded; keeping it.")
        else:
            out_dir = settings.DATA_DIR / "demo-dicom"
            files = write_hospital(out_dir=out_dir, patients=synthetic_patients(patients))
            summary = dicom_ingest_paths(paths=files, actor=Actor.system("demo"),
                                         source="demo")
            self.stdout.write(
                f"Seeded {patients} synthetic patients: {summary.counts['registered']} "
                f"DICOM instances registered from {out_dir}.")
            if summary.problems:
                raise CommandError(f"demo files were not registered: {summary.problems[:3]}")
            self._cohort()
        self._accounts()
        self.stdout.write("\nDemo logins (http://127.0.0.1:8000/login/):")
        for username, _role, password, what in DEMO_ACCOUNTS:
            self.stdout.write(f"  {username:<8} {password:<20} {what}")
        self.stdout.write(
            "\nEvery login but patient's then asks for a code from an authenticator app. "
            f"The demo's share one key: {demo_totp_secret()} (add it to an app), or print "
            "the current code with:\n  .venv/bin/python manage.py demo_code staff")
        secret = self._token()
        first = _first_demo_patient()
        study = (ImagingStudy.objects.filter(patient=first).order_by("pk").first()
                 if first else None)
        self.stdout.write(
            "\nA consent check with the demo API token (scope consent:read):\n"
            f"  curl -s -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' "
            "-d '{\"purpose\": \"ai-training\", \"study_instance_uids\": "
            f"[\"{study.study_uid if study else '1.2.3'}\", \"1.2.3.4\"]}}' "
            "http://127.0.0.1:8000/api/v1/consent-checks")

    def _token(self) -> str:
        """A fresh token each run (the secret is shown only when made); older demo tokens
        are revoked."""
        staff = get_user_model().objects.get(username="staff")
        actor = Actor(label="demo", role="system")
        for old in ApiToken.objects.filter(owner=staff, name=DEMO_TOKEN_NAME,
                                           revoked_at__isnull=True):
            api_token_revoke(token=old, actor=actor)
        _, secret = api_token_create(owner=staff, name=DEMO_TOKEN_NAME,
                                     scopes=[TokenScope.CONSENT_READ], actor=actor)
        return secret

    @transaction.atomic
    def _accounts(self) -> None:
        User = get_user_model()
        for username, role, password, _ in DEMO_ACCOUNTS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@demo.invalid"})
            if created:
                user.set_password(password)
                user.is_staff = user.is_superuser = role is None
                user.save()
            if role:
                role_grant(user=user, role=role, actor=Actor.system("demo"))
            if role != Role.PATIENT and not TOTPDevice.objects.filter(user=user).exists():
                # Privileged sign-ins take a second step; the demo's authenticator key is
                # printed for testers (production accounts enrol their own).
                TOTPDevice.objects.create(user=user, name="demo authenticator",
                                          key=DEMO_TOTP_KEY, confirmed=True)
        first = _first_demo_patient()
        if first and first.user_id is None:
            first.user = User.objects.get(username="patient")
            first.save(update_fields=["user"])
            self._choices(first)

    def _cohort(self) -> None:
        """Other patients' choices, so an export has both yeses and noes: every third says
        yes to AI training on paper, every third no, the rest said nothing (the default)."""
        staff = Actor(label="staff", role=Role.STAFF)
        form = current_form()
        ai = Purpose.objects.get(code="ai-training")
        others = sorted(_demo_patients(), key=lambda p: p.mrn)[1:]
        for index, patient in enumerate(others):
            if index % 3 < 2:
                consent_record(patient=patient, purpose=ai, actor=staff, source="paper",
                               form=form, decision="permit" if index % 3 == 0 else "deny",
                               witness="J. Doe, registrar")

    def _choices(self, patient: Patient) -> None:
        """A few choices for the demo patient, as if made on paper and in the portal."""
        staff = Actor(label="staff", role=Role.STAFF)
        me = Actor.for_user(patient.user, role=Role.PATIENT)
        form = current_form()
        purpose = {p.code: p for p in Purpose.objects.all()}
        consent_record(patient=patient, purpose=purpose["research"], decision="permit",
                       actor=staff, source="paper", form=form, witness="J. Doe, registrar")
        consent_record(patient=patient, purpose=purpose["ai-training"], decision="permit",
                       actor=me, source="portal", form=form)
        consent_record(patient=patient, purpose=purpose["ai-training"], decision="deny",
                       actor=me, source="portal", form=form, scope_kind="body_part",
                       scope_value="HEAD")
        chest = patient.studies.filter(body_parts__contains="CHEST").first()
        if chest:
            consent_record(patient=patient, purpose=purpose["external-sharing"],
                           decision="permit", actor=me, source="portal", form=form,
                           scope_kind="study", scope_value=chest.study_uid)
            disclosure_record(study=chest, purpose=purpose["external-sharing"],
                              recipient="Riverside Clinic (second opinion)", actor=staff)
