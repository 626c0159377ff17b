from django.core.management.base import BaseCommand, CommandError

from audit import ledger


class Command(BaseCommand):
    help = "Verify the ledger's hash chain; exit non-zero naming the first bad event."

    def handle(self, *args, **options):
        result = ledger.verify()
        if not result.ok:
            raise CommandError("LEDGER BROKEN: " + result.problems[0])
        self.stdout.write(self.style.SUCCESS(
            f"Ledger intact: {result.checked} events chained, head {result.head_hash}."))
        if result.pending:
            self.stdout.write(f"{result.pending} recent events are waiting to be chained.")
