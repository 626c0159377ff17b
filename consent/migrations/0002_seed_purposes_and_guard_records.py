import hashlib

from django.db import migrations
from django.utils import timezone

# (code, parent, policy, DUO term, name, plain-language description)
PURPOSES = [
    ("research", None, "opt-in", "DUO:0000042", "Medical research",
     "Researchers may study your scans to learn about diseases and treatments. Your name "
     "and other details that identify you are removed first."),
    ("ai-training", "research", "opt-in", "", "Training AI tools",
     "Your scans, with your identity removed, may be used to teach computer programs (AI) "
     "that help doctors read scans."),
    ("ai-training-commercial", "ai-training", "opt-in", "", "Training AI tools sold by companies",
     "Your scans, with your identity removed, may be used by companies to build AI tools "
     "they sell."),
    ("external-sharing", None, "opt-in", "", "Sharing with other organisations",
     "Your scans may be sent to organisations outside this hospital, for example a "
     "university, with your identity removed."),
    ("education", None, "opt-out", "", "Teaching",
     "Your scans may be shown to doctors and students being trained at this hospital, "
     "with your identity removed. You can say no at any time."),
]

FORM_TEXT = """How your scans may be used

Your scans are first used for your own care. With your permission they can also help
others: for medical research, to train AI tools that help doctors, to teach new doctors,
or shared with other organisations. Before any of that, your name and other details that
identify you are removed.

You choose, purpose by purpose, and you can make exceptions for one scan or for a kind of
scan. You can change your mind at any time; a change applies from then on. You can see
every use of your scans in the patient portal.
"""

APPEND_ONLY = ("consent_consentrecord",)


def seed(apps, schema_editor):
    Purpose = apps.get_model("consent", "Purpose")
    ConsentForm = apps.get_model("consent", "ConsentForm")
    by_code = {}
    for position, (code, parent, policy, duo, name, description) in enumerate(PURPOSES):
        by_code[code] = Purpose.objects.create(
            code=code, parent=by_code.get(parent), default_policy=policy, duo_id=duo,
            name=name, description=description, position=position)
    ConsentForm.objects.create(
        code="imaging-use", version=1, title="How your scans may be used", text=FORM_TEXT,
        text_sha256=hashlib.sha256(FORM_TEXT.encode()).hexdigest(),
        published_at=timezone.now())


def guard_records(apps, schema_editor):
    from audit import guards

    guards.install(schema_editor.connection, APPEND_ONLY)


def unguard_records(apps, schema_editor):
    from audit import guards

    guards.uninstall(schema_editor.connection, APPEND_ONLY)


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_initial"), ("audit", "0002_append_only_guards")]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RunPython(guard_records, unguard_records),
    ]
