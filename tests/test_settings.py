"""Settings come from the environment; production refuses to start without a secret."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_django(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Only what a fresh shell has: none of the test run's own configuration leaks in.
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    clean.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.run([sys.executable, "-c", code], env=clean, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_production_without_secret_key_stops_with_a_clear_message(tmp_path):
    result = run_django("import django; django.setup()", {
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/consentry",
        "CONSENTRY_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_embedded_default_is_sqlite_inline_celery_console_email_and_keeps_its_key(tmp_path):
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, "
            "s.MAILERS['default']['BACKEND'].rsplit('.', 2)[-2], s.DEBUG, "
            "s.DATABASES['default']['NAME'], s.SECRET_KEY)")
    first = run_django(code, {"CONSENTRY_DATA_DIR": str(tmp_path)})
    assert first.returncode == 0, first.stderr
    engine, eager, mail, debug, name, key = first.stdout.split()
    assert (engine, eager, mail, debug) == ("django.db.backends.sqlite3", "True", "console",
                                            "False")
    assert name == str(tmp_path / "consentry.sqlite3")
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    again = run_django(code, {"CONSENTRY_DATA_DIR": str(tmp_path)})
    assert again.stdout.split()[-1] == key  # sessions survive a restart


def test_database_and_redis_urls_select_postgresql_and_redis(tmp_path):
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'], "
            "s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER, s.CACHES['default']['BACKEND'], "
            "s.PASSWORD_HASHERS[0])")
    result = run_django(code, {
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/hospital",
        "REDIS_URL": "redis://127.0.0.1:6379/3", "SECRET_KEY": "k" * 60,
        "CONSENTRY_IDENTIFIER_KEYS": "Y29uc2VudHJ5LXRlc3Qtb25seS1pZGVudGlmaWVyISE=",
        "CONSENTRY_BLIND_INDEX_KEY": "b" * 40,
        "CONSENTRY_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql", "hospital", "redis://127.0.0.1:6379/3", "False",
        "config.cache.ConsentryRedisCache",
        # The tests hash with MD5 (tests/conftest.py); production keeps Argon2.
        "django.contrib.auth.hashers.Argon2PasswordHasher"]


def production_env(tmp_path) -> dict[str, str]:
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    return {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/consentry",
            "SECRET_KEY": "a-long-random-production-secret-" + "x9Q#" * 12,
            "ALLOWED_HOSTS": "consentry.hospital.example",
            "CONSENTRY_LEDGER_SIGNING_KEY": key, "CONSENTRY_EXPORT_SIGNING_KEY": key,
            "CONSENTRY_BASE_URL": "https://consentry.hospital.example",
            "CONSENTRY_IDENTIFIER_KEYS": Fernet.generate_key().decode(),
            "CONSENTRY_BLIND_INDEX_KEY": secrets.token_urlsafe(48),
            "CONSENTRY_DATA_DIR": str(tmp_path)}


DEPLOY_CHECK = ("import django; django.setup(); from django.core.management import "
                "call_command; call_command('check', deploy=True, fail_level='WARNING')")


def test_deploy_checks_are_clean_in_production_settings(tmp_path):
    result = run_django(DEPLOY_CHECK, production_env(tmp_path))
    assert result.returncode == 0, result.stderr


def test_deploy_checks_warn_when_the_ledger_signing_key_is_not_set(tmp_path):
    env = production_env(tmp_path)
    del env["CONSENTRY_LEDGER_SIGNING_KEY"]
    result = run_django(DEPLOY_CHECK, env)
    assert result.returncode != 0
    assert "consentry.W001" in result.stderr


def test_deploy_checks_warn_when_the_export_key_is_not_set(tmp_path):
    env = production_env(tmp_path)
    del env["CONSENTRY_EXPORT_SIGNING_KEY"]
    result = run_django(DEPLOY_CHECK, env)
    assert result.returncode != 0
    assert "consentry.W002" in result.stderr


@pytest.mark.parametrize("base", ["http://127.0.0.1:8000", "http://consentry.example",
                                  "https://localhost"])
def test_deploy_checks_warn_when_email_links_would_reach_nobody(tmp_path, base):
    env = {**production_env(tmp_path), "CONSENTRY_BASE_URL": base}
    result = run_django(DEPLOY_CHECK, env)
    assert result.returncode != 0
    assert "consentry.W003" in result.stderr


@pytest.mark.parametrize("missing", ["CONSENTRY_IDENTIFIER_KEYS", "CONSENTRY_BLIND_INDEX_KEY"])
def test_production_without_identifier_keys_stops_with_a_clear_message(tmp_path, missing):
    env = production_env(tmp_path)
    del env[missing]
    result = run_django("import django; django.setup()", env)
    assert result.returncode != 0
    assert f"{missing} not set" in result.stderr
    assert not (tmp_path / "identifier_keys").exists()
    assert not (tmp_path / "blind_index_key").exists()


@pytest.mark.parametrize(("override", "message"), [
    ({"CONSENTRY_IDENTIFIER_KEYS": "not-a-fernet-key"}, "key 1 is not a Fernet key"),
    ({"CONSENTRY_BLIND_INDEX_KEY": "short"}, "at least 32 characters"),
    ({"CONSENTRY_BLIND_INDEX_KEY": "SAME"}, "must differ"),
])
def test_malformed_identifier_keys_stop_the_start(tmp_path, override, message):
    env = production_env(tmp_path)
    if override.get("CONSENTRY_BLIND_INDEX_KEY") == "SAME":
        override = {"CONSENTRY_BLIND_INDEX_KEY": env["CONSENTRY_IDENTIFIER_KEYS"]}
    result = run_django("import django; django.setup()", {**env, **override})
    assert result.returncode != 0
    assert message in result.stderr


def test_the_embedded_default_makes_and_keeps_its_identifier_keys(tmp_path):
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(','.join(s.CONSENTRY_IDENTIFIER_KEYS), s.CONSENTRY_BLIND_INDEX_KEY)")
    first = run_django(code, {"CONSENTRY_DATA_DIR": str(tmp_path)})
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "identifier_keys").stat().st_mode & 0o777 == 0o600
    again = run_django(code, {"CONSENTRY_DATA_DIR": str(tmp_path)})
    assert again.stdout == first.stdout  # what was encrypted yesterday still opens


@pytest.mark.parametrize("override", [
    {"CONSENTRY_IDENTIFIER_KEYS": "Y29uc2VudHJ5LXRlc3Qtb25seS1pZGVudGlmaWVyISE="},
    {"CONSENTRY_BLIND_INDEX_KEY": "consentry-test-only-blind-index-key-not-for-production"},
    {"CONSENTRY_BLIND_INDEX_KEY": "ab" * 24},
])
def test_deploy_checks_warn_when_identifier_keys_are_weak(tmp_path, override):
    result = run_django(DEPLOY_CHECK, {**production_env(tmp_path), **override})
    assert result.returncode != 0
    assert "consentry.W004" in result.stderr


def test_deploy_checks_warn_when_identifier_keys_were_generated_in_the_data_dir(tmp_path):
    env = {k: v for k, v in production_env(tmp_path).items()
           if not k.startswith("CONSENTRY_IDENTIFIER") and k != "CONSENTRY_BLIND_INDEX_KEY"
           and k != "DATABASE_URL"}
    result = run_django(DEPLOY_CHECK, env)
    assert "consentry.W004" in result.stderr
    assert "generated in the data directory" in result.stderr
