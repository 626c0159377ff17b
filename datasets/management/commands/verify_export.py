from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from datasets.manifest import verify_manifest
from datasets.signing import key_id, load_public_key, published_keys


class Command(BaseCommand):
    help = ("Check an exported version: the manifest's signature against a public key you "
            "pinned, then every file by exact path and hash; any file not listed fails.")

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument(
            "--public-key", action="append", default=[], metavar="FILE",
            help="the hospital's export public key (PEM), as published; repeat for several. "
                 "Without it, this installation's own export keys are used.")

    def handle(self, *args, directory, public_key, **options):
        path = Path(directory)
        if not path.is_dir():
            raise CommandError(f"no such directory: {directory}")
        if public_key:
            trusted = {}
            for file in public_key:
                try:
                    public = load_public_key(Path(file).read_bytes())
                except OSError as exc:
                    raise CommandError(f"cannot read {file}: {exc.strerror}") from None
                except ValueError as exc:
                    raise CommandError(f"{file}: {exc}") from None
                trusted[key_id(public)] = public
        else:
            trusted = published_keys()
        problems = verify_manifest(path, trusted)
        if problems:
            raise CommandError("EXPORT NOT INTACT: " + "; ".join(problems[:20]))
        self.stdout.write(self.style.SUCCESS(
            f"Export intact: {path} (signed by a key you trust: "
            f"{', '.join(sorted(trusted))})"))
