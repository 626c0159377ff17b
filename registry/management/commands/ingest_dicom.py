import getpass
import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from audit.ledger import Actor
from registry.ingest_jobs import ingest_job_queue
from registry.models import IngestJob, IngestStatus
from registry.registration import dicom_ingest_paths, paths_to_files


class Command(BaseCommand):
    help = (
        "Register DICOM files and folders: patients, studies, series and instances. "
        "Prints what was registered, already known, in conflict or rejected, and why."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", help="DICOM files or folders to walk")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--inline", action="store_true",
                          help="register here even when a worker is configured")
        mode.add_argument("--background", action="store_true",
                          help="hand the work to a Celery worker (needs REDIS_URL)")
        parser.add_argument("--job", type=int, help="show the state of a background job")
        parser.add_argument(
            "--readers", type=int, default=None,
            help="processes that read and hash files while this one registers them "
                 "(default: one per CPU this process may use)")

    def handle(self, *args, paths, inline, background, job, readers, verbosity, **options):
        if job is not None:
            return self._show_job(job)
        if readers is None:
            readers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
                os.cpu_count() or 1)
        if readers < 1:
            raise CommandError(f"--readers must be 1 or more, not {readers}")
        if not paths:
            raise CommandError("give at least one file or folder to register")
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise CommandError(f"no such file or folder: {', '.join(missing)}")
        actor = Actor(label=f"cli:{getpass.getuser()}", role="operator")
        has_worker = not settings.CELERY_TASK_ALWAYS_EAGER
        if background and not has_worker:
            raise CommandError("--background needs a Celery worker: set REDIS_URL")
        files = paths_to_files(paths)
        if background or (has_worker and not inline
                          and len(files) > settings.CONSENTRY_INGEST_BACKGROUND_THRESHOLD):
            queued = ingest_job_queue(paths=paths, actor=actor, files=files)
            self.stdout.write(
                f"{len(files)} files queued as ingest job {queued.pk} in "
                f"{queued.shards.count()} shards for the workers. "
                f"Follow it with: manage.py ingest_dicom --job {queued.pk}")
            return
        with tqdm(total=len(files), unit="file", desc="Registering",
                  disable=not sys.stderr.isatty() or verbosity == 0) as bar:
            summary = dicom_ingest_paths(paths=files, actor=actor, source="cli",
                                         progress=bar.update, readers=readers)
        self._print_summary(summary.as_dict())

    def _print_summary(self, summary: dict) -> None:
        self.stdout.write(
            f"Registered {summary['registered']}, already known {summary['known']}, "
            f"conflicting {summary['conflict']}, rejected {summary['rejected']}.")
        for problem in summary["problems"]:
            self.stdout.write(f"  {problem['status']}: {problem['path']}: {problem['reason']}")

    def _show_job(self, job_id: int) -> None:
        job = IngestJob.objects.filter(pk=job_id).first()
        if job is None:
            raise CommandError(f"no ingest job {job_id}")
        self.stdout.write(f"Ingest job {job.pk}: {job.status} (requested by "
                          f"{job.requested_by} at {job.created_at:%Y-%m-%d %H:%M:%S} UTC)")
        shards = list(job.shards.defer("files"))  # a shard's file list can be long
        if shards:
            done = sum(shard.status == IngestStatus.DONE for shard in shards)
            self.stdout.write(f"  shards done: {done} of {len(shards)}")
            for shard in shards:
                if "error" in shard.summary:
                    self.stdout.write(f"  shard {shard.number} failed (it is retried): "
                                      f"{shard.summary['error']}")
        if "error" in job.summary:
            self.stdout.write(f"  failed: {job.summary['error']}")
        elif job.summary:
            self._print_summary(job.summary)

