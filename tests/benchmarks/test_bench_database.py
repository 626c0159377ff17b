"""The benchmark's throwaway PostgreSQL database: a new unique name per run, and only the
database the run itself created is ever dropped (an earlier version force-dropped any
database called ``consentry_bench``)."""

import secrets
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection

from benchmarks import __main__ as bench

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql",
                                reason="the throwaway database is made on PostgreSQL only")


def server_url() -> str:
    s = connection.settings_dict
    auth = quote(s["USER"] or "") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def admin():
    s = connection.settings_dict
    return psycopg.connect(dbname="postgres", user=s["USER"], password=s.get("PASSWORD"),
                           host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432,
                           autocommit=True)


def exists(name: str) -> bool:
    with admin() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            [name]).fetchone() is not None


@pytest.fixture
def someone_elses_database():
    """A database the benchmark did not make, with a row in it, named like a bench one."""
    name = f"{connection.settings_dict['NAME']}_bench_{secrets.token_hex(4)}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    s = connection.settings_dict
    with psycopg.connect(dbname=name, user=s["USER"], password=s.get("PASSWORD"),
                         host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432,
                         autocommit=True) as conn:
        conn.execute("CREATE TABLE precious (v int)")
        conn.execute("INSERT INTO precious VALUES (42)")
    yield name
    with admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_existing_database_with_the_chosen_name_is_refused_and_kept(
        monkeypatch, someone_elses_database):
    monkeypatch.setattr(bench, "new_bench_name", lambda: someone_elses_database)
    with pytest.raises(SystemExit, match="already exists"), \
            bench.bench_database(server_url()):
        pytest.fail("the benchmark must not run on a database it did not create")
    assert exists(someone_elses_database)
    s = connection.settings_dict
    with psycopg.connect(dbname=someone_elses_database, user=s["USER"],
                         password=s.get("PASSWORD"), host=s["HOST"] or "127.0.0.1",
                         port=s["PORT"] or 5432) as conn:
        assert conn.execute("SELECT v FROM precious").fetchall() == [(42,)]


def test_each_run_makes_a_new_database_and_drops_only_that_one(someone_elses_database):
    with bench.bench_database(server_url()) as url:
        made = url.rsplit("/", 1)[1]
        assert made.startswith(bench.BENCH_PREFIX) and made != "consentry_bench"
        assert made != someone_elses_database
        assert exists(made)
    assert not exists(made)
    assert exists(someone_elses_database)


def test_the_old_fixed_name_is_never_chosen_or_dropped():
    names = {bench.new_bench_name() for _ in range(50)}
    assert len(names) == 50
    assert "consentry_bench" not in names
    assert all(n.startswith("consentry_bench_") and len(n) > len("consentry_bench_")
               for n in names)
