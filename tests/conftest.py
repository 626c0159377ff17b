import importlib
import os
import shutil
from pathlib import Path

import pydicom
import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from pytest_django.plugin import blocking_manager_key

from access.grants import role_grant
from access.roles import Role
from audit import guards
from audit.ledger import Actor
from config.celery import app
from registry.models import Patient

GUARDED_TABLES = (*guards.APPEND_ONLY_TABLES, "consent_consentrecord")
CORPUS = Path(pydicom.__file__).parent / "data" / "test_files"


def pytest_configure(config):
    """Argon2 (production's hasher, in config/settings.py) costs about 100 MB and a tenth of
    a second per hash by design, and nearly every test makes users: in the tests that was
    minutes of the run. The tests check who may sign in, not how hard a stolen hash is to
    crack, so they hash with MD5, as Django advises for test runs. Production's own list is
    checked in tests/test_settings.py, in a process this file does not touch."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher",
                                 *settings.PASSWORD_HASHERS]


# `make mutation` (mutmut) runs one test session per mutant, several at once, each in a
# process forked from one parent. Each session gets its own test database (one session's
# set-up would delete the database another is using), copied from a template that the first
# session migrated with the unchanged code: migrating per mutant took most of its time. On
# SQLite the copy is a file; on PostgreSQL (`MUTATION_DATABASE_URL`) it is
# `CREATE DATABASE … TEMPLATE …`, which copies the files without replaying the migrations.
_MUTATION_DB_BASE: dict[str, str] = {}


def _mutation_db_names() -> tuple[str, str] | None:
    """(this session's test database, the template), when mutmut runs this session."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if "MUTANT_UNDER_TEST" not in os.environ:
        return None
    # The parent runs several sessions in turn: name from the first name, not the last.
    base = _MUTATION_DB_BASE.setdefault(
        "default", str(database["TEST"].get("NAME") or f"test_{database['NAME']}"))
    if _on_postgresql():
        return f"{base}_mut_{os.getpid()}", f"{base}_mut_template"
    return f"{base}-{os.getpid()}", f"{base}-template"


def _on_postgresql() -> bool:
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def _maintenance(*statements: str) -> list[tuple]:
    """Run statements on the server's `postgres` database (a database cannot be copied,
    renamed or dropped from a connection to itself); the last one's rows."""
    import psycopg
    from django.conf import settings

    database = settings.DATABASES["default"]
    rows: list[tuple] = []
    with psycopg.connect(dbname="postgres", user=database["USER"],
                         password=database["PASSWORD"] or None, host=database["HOST"] or None,
                         port=database["PORT"] or None, autocommit=True) as maintenance:
        for statement in statements:
            cursor = maintenance.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
    return rows


def _template_exists(template: str) -> bool:
    if _on_postgresql():
        return bool(_maintenance(f"SELECT 1 FROM pg_database WHERE datname = '{template}'"))
    return Path(template).exists()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    names = _mutation_db_names()
    if names is None:
        yield
        return
    from django.conf import settings
    from django.db import connections

    settings.DATABASES["default"]["TEST"]["NAME"] = names[0]
    yield
    if _on_postgresql():
        connections.close_all()
        _maintenance(f'DROP DATABASE IF EXISTS "{names[0]}" WITH (FORCE)')
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(names[0] + suffix).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _mutant_answers_not_remembered():
    """mutmut runs the unchanged code's tests in its own process before it forks one child
    per mutant, so a child starts with whatever that run remembered: the de-identifier's
    rules (``_rule_cached``) and the byte-level writer's fates and stamps. A mutant of
    ``_rule``, ``element_fate`` or ``stamp`` was then never called for the questions the
    tests ask, and "survived" although the tests fail on it (issue 18). Per test, not per
    session: mutmut's first run (``MUTANT_UNDER_TEST=stats``) records which tests call each
    function, and a test answered from what an earlier test remembered was not recorded."""
    if "MUTANT_UNDER_TEST" in os.environ:
        from datasets import deid, deid_bytes

        deid._rule_cached.cache_clear()
        deid._loose_patterns.cache_clear()
        deid_bytes._FATE_TABLES.clear()
        deid_bytes._STAMPS.clear()


@pytest.fixture(scope="session")
def django_db_keepdb(request, django_db_modify_db_settings) -> bool:
    """Under mutmut, a copy of the migrated template is this session's database, kept
    as it is (Django only checks that every migration is applied)."""
    names = _mutation_db_names()
    if names is not None and _template_exists(names[1]):
        if _on_postgresql():
            _maintenance(f'DROP DATABASE IF EXISTS "{names[0]}" WITH (FORCE)',
                         f'CREATE DATABASE "{names[0]}" TEMPLATE "{names[1]}"')
        else:
            shutil.copyfile(names[1], names[0])
        return True
    return bool(request.config.getvalue("reuse_db"))


@pytest.fixture(scope="session", autouse=True)
def mutation_db_template(request, django_db_blocker):
    names = _mutation_db_names()
    if names is None or _template_exists(names[1]):
        return
    request.getfixturevalue("django_db_setup")
    partial = f"{names[1]}-{os.getpid()}.partial"
    if _on_postgresql():
        from django.db import connections

        # Before any test has written to it; a database with open connections cannot be
        # copied, and the test connection opens again on its next query.
        connections.close_all()
        partial = f"{names[1]}_{os.getpid()}_partial"
        _maintenance(f'CREATE DATABASE "{partial}" TEMPLATE "{names[0]}"',
                     f'ALTER DATABASE "{partial}" RENAME TO "{names[1]}"')
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("VACUUM INTO %s", [partial])  # before any test has written to it
    os.replace(partial, names[1])


@pytest.fixture(autouse=True)
def plain_static_files(settings):
    """Production settings expect collectstatic's manifest; tests render without one."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def fresh_cache():
    """Rate-limit counters live in the shared cache (Redis in the PostgreSQL run): each test
    starts with none."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def inline_celery():
    """Tasks run in this process, whatever broker the test run is configured with."""
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    """Each test stores DICOM files and exports in its own data directory."""
    settings.DATA_DIR = tmp_path / "data"
    settings.DICOM_STORE_DIR = settings.DATA_DIR / "dicom"
    settings.EXPORT_DIR = settings.DATA_DIR / "exports"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


@pytest.fixture
def corpus() -> Path:
    return CORPUS


@pytest.fixture
def corpus_copy(tmp_path) -> Path:
    """A writable copy of pydicom's test files."""
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


def make_user(username: str, role: str | None = None):
    user = get_user_model().objects.create_user(username=username, password="pw-" + username,
                                                email=f"{username}@example.invalid")
    if role:  # as an admin would: through the service, with its ledger event
        role_grant(user=user, role=role, actor=Actor(label="test setup", role="admin"))
    return user


@pytest.fixture
def patient(db):
    user = make_user("alice", Role.PATIENT)
    return Patient.objects.create(issuer="LOCAL", mrn="MRN-ALICE", name="Liddell^Alice",
                                  user=user)


@pytest.fixture
def other_patient(db):
    user = make_user("bob", Role.PATIENT)
    return Patient.objects.create(issuer="LOCAL", mrn="MRN-BOB", name="Builder^Bob",
                                  user=user)


@pytest.fixture
def staff(db):
    return make_user("sam-staff", Role.STAFF)


@pytest.fixture
def steward(db):
    return make_user("stella-steward", Role.STEWARD)


@pytest.fixture
def auditor(db):
    return make_user("audrey-auditor", Role.AUDITOR)


@pytest.fixture
def outsider(db):
    return make_user("charlie")


@pytest.fixture
def hospital(db):
    """Alice with a head CT (accession ACC1) and a knee MR; Bob with a chest CT."""
    from registry.models import ImagingStudy
    from tests.consent.factories import make_patient, make_study

    alice = make_patient("MRN-A")
    bob = make_patient("MRN-B")
    studies = {
        "a-ct": make_study(alice, ("CT", "HEAD")),
        "a-mr": make_study(alice, ("MR", "KNEE")),
        "b-ct": make_study(bob, ("CT", "CHEST")),
    }
    a_ct = studies["a-ct"]
    a_ct.accession_number, a_ct.study_date = "ACC1", "2025-01-10"
    a_ct.save(update_fields=["accession_number", "accession_index", "study_date"])
    ImagingStudy.objects.filter(pk=studies["a-mr"].pk).update(study_date="2026-02-01")
    return alice, bob, studies


@pytest.fixture
def committed_db(transactional_db, django_db_blocker):
    """Real commits, for tests where another process (a Celery worker) must see the data.

    The ledger refuses DELETE and TRUNCATE, so the flush that follows such a test works the
    way a table owner would: the guards are lifted here, the flush empties the tables, and
    ``pytest_runtest_teardown`` below puts the guards back."""
    yield
    with django_db_blocker.unblock():
        guards.uninstall(connection, GUARDED_TABLES)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:
        # After the last test the test database is already gone.
        # Only after a test that really ran with committed_db (not a skipped one).
        if nextitem is not None and "committed_db" in getattr(item, "funcargs", {}):
            with item.config.stash[blocking_manager_key].unblock():
                guards.install(connection, GUARDED_TABLES)
                restore_migration_data()


def restore_migration_data() -> None:
    """The flush also removed what migrations seed: role groups, purposes, consent form."""
    for role in Role.values:
        Group.objects.get_or_create(name=role)
    seed = importlib.import_module("consent.migrations.0002_seed_purposes_and_guard_records")
    seed.seed(django_apps, None)


@pytest.fixture(scope="session")
def pacs(tmp_path_factory):
    """The hospital's PACS: one real Orthanc (with DICOMweb) for the whole run."""
    from tests.orthanc import orthanc_start

    orthanc = orthanc_start(tmp_path_factory.mktemp("orthanc-pacs"), "HOSPITALPACS")
    yield orthanc
    orthanc.stop()


@pytest.fixture(scope="session")
def research_pacs(tmp_path_factory):
    """A research group's PACS that datasets are delivered to: a second Orthanc."""
    from tests.orthanc import orthanc_start

    orthanc = orthanc_start(tmp_path_factory.mktemp("orthanc-research"), "RESEARCHPACS")
    yield orthanc
    orthanc.stop()


@pytest.fixture
def empty_pacs(pacs):
    pacs.clear()
    yield pacs
    pacs.clear()
