from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from datasets.manifest import verify_manifest


class Command(BaseCommand):
    help = "Check an exported version: the manifest's signature, the file list and hashes."

    def add_arguments(self, parser):
        parser.add_argument("directory")

    def handle(self, *args, directory, **options):
        path = Path(directory)
        if not path.is_dir():
            raise CommandError(f"no such directory: {directory}")
        problems = verify_manifest(path)
        if problems:
            raise CommandError("EXPORT NOT INTACT: " + "; ".join(problems[:20]))
        self.stdout.write(self.style.SUCCESS(f"Export intact: {path}"))
