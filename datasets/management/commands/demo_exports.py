from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from audit.ledger import Actor
from consent.models import Purpose
from datasets.exports import dataset_create
from datasets.models import Dataset

DEMO_DATASET = "AI training cohort (demo)"


class Command(BaseCommand):
    help = ("Add the demo dataset (run `manage.py demo` first): an AI-training export of "
            "every study, for the steward to preview and run.")

    def handle(self, *args, **options):
        steward = get_user_model().objects.filter(username="steward").first()
        if steward is None:
            raise CommandError("no demo steward: run `manage.py demo` first")
        dataset = Dataset.objects.filter(name=DEMO_DATASET).first()
        if dataset is None:
            dataset = dataset_create(
                name=DEMO_DATASET, purpose=Purpose.objects.get(code="ai-training"),
                owner=steward, recipient="Northwind AI Lab (demo)",
                description="Every registered study, for a triage model. Studies without "
                            "consent, and those that cannot be made safe, are left out.",
                selection={"date_from": "2000-01-01"},
                actor=Actor(label="demo", role="system"))
        self.stdout.write(
            f"\nExports: sign in as steward, open Datasets → {dataset.name}, preview, run.\n"
            "Then sign in as patient, say no to AI training: the dataset shows a withdrawal "
            "notice (the owner's email prints in this console).")
