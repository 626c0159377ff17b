"""Consentry settings, read from the environment.

With no environment at all Consentry runs embedded: SQLite in the data directory, Celery
tasks inline, email to the console. ``DATABASE_URL`` switches to PostgreSQL (production),
``REDIS_URL`` to Redis as Celery broker and cache.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def embedded_secret_key(data_dir: Path) -> str:
    """The embedded default keeps its own key so sessions survive a restart."""
    key_file = data_dir / "secret_key"
    if not key_file.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


DATA_DIR = Path(env("CONSENTRY_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DICOM_STORE_DIR = DATA_DIR / "dicom"
EXPORT_DIR = DATA_DIR / "exports"

DATABASE_URL = env("DATABASE_URL")
REDIS_URL = env("REDIS_URL")
PRODUCTION = bool(DATABASE_URL)

DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DATABASE_URL set Consentry runs in production mode "
            "and will not invent a key: set SECRET_KEY to a long random value."
        )
    SECRET_KEY = embedded_secret_key(DATA_DIR)



def embedded_identifier_keys(data_dir: Path) -> tuple[list[str], str]:
    """The embedded default's identifier keys, made once and kept beside the database they
    protect (a copy of one without the other opens nothing)."""
    from cryptography.fernet import Fernet

    keys_file, index_file = data_dir / "identifier_keys", data_dir / "blind_index_key"
    data_dir.mkdir(parents=True, exist_ok=True)
    for path, make in ((keys_file, lambda: Fernet.generate_key().decode()),
                       (index_file, lambda: secrets.token_urlsafe(48))):
        if not path.exists():
            path.write_text(make())
            path.chmod(0o600)
    return env_list_of(keys_file.read_text()), index_file.read_text().strip()


def env_list_of(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def valid_identifier_keys(keys: list[str], index_key: str) -> tuple[list[str], str]:
    """Refuse at start-up what cannot work: a key Fernet cannot use would fail at the first
    patient saved, and a short blind-index key makes the digests guessable."""
    from cryptography.fernet import Fernet

    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"CONSENTRY_IDENTIFIER_KEYS: key {number} is not a Fernet key (32 bytes, "
                "url-safe base64; make one with `python -c \"from cryptography.fernet import "
                "Fernet; print(Fernet.generate_key().decode())\"`).") from None
    if len(index_key) < 32:
        raise ImproperlyConfigured(
            "CONSENTRY_BLIND_INDEX_KEY must be at least 32 characters of random text.")
    if index_key in keys:
        raise ImproperlyConfigured(
            "CONSENTRY_BLIND_INDEX_KEY must differ from every CONSENTRY_IDENTIFIER_KEYS key.")
    return keys, index_key


# Direct identifiers (names, MRNs, birth dates …) are encrypted under the first of these
# Fernet keys (newest first; the others still decrypt during a rotation), and looked up by
# HMAC under a separate blind-index key (registry/identifiers.py).
CONSENTRY_IDENTIFIER_KEYS = env_list("CONSENTRY_IDENTIFIER_KEYS")
CONSENTRY_BLIND_INDEX_KEY = env("CONSENTRY_BLIND_INDEX_KEY")
CONSENTRY_IDENTIFIER_KEYS_GENERATED = False
if not (CONSENTRY_IDENTIFIER_KEYS and CONSENTRY_BLIND_INDEX_KEY):
    if PRODUCTION:
        missing = [name for name, value in (
            ("CONSENTRY_IDENTIFIER_KEYS", CONSENTRY_IDENTIFIER_KEYS),
            ("CONSENTRY_BLIND_INDEX_KEY", CONSENTRY_BLIND_INDEX_KEY)) if not value]
        raise ImproperlyConfigured(
            f"{' and '.join(missing)} not set. In production Consentry will not invent the "
            "keys that encrypt patients' identifiers: set them from your secret store "
            "(README, \"Identifiers at rest\").")
    made_keys, made_index_key = embedded_identifier_keys(DATA_DIR)
    CONSENTRY_IDENTIFIER_KEYS = CONSENTRY_IDENTIFIER_KEYS or made_keys
    CONSENTRY_BLIND_INDEX_KEY = CONSENTRY_BLIND_INDEX_KEY or made_index_key
    CONSENTRY_IDENTIFIER_KEYS_GENERATED = True
valid_identifier_keys(CONSENTRY_IDENTIFIER_KEYS, CONSENTRY_BLIND_INDEX_KEY)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_ratelimit",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # Ours, lowest layer first (README, "Layout"): each imports only apps listed before it.
    "audit",
    "outbox",
    "access",
    "registry",
    "consent",
    "consent.portal",
    "consent.desk",
    "datasets",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The patient pages speak the browser's language where a translation exists.
    "django.middleware.locale.LocaleMiddleware",
    "config.api_paths.ApiTrailingSlashMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "access.middleware.SecondFactorMiddleware",
    # Answers to a signed-in person or a token are never cached (personal data).
    "access.middleware.NoStoreMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # Refuses logins for a username+address with too many recent failures.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.navigation.navigation",
            ],
        },
    },
]

if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "consentry.sqlite3",
            # A file, not memory, so a Celery worker process in the tests sees the same data.
            "TEST": {"NAME": DATA_DIR / "test-consentry.sqlite3"},
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.ConsentryRedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # A patient's own name or MRN is the first guess of anyone who knows them.
    {"NAME": "access.passwords.PersonalDataSimilarityValidator"},
]
# Failed logins are throttled per username and address, in the database shared by every
# web process: 5 failures lock that pair out for 15 minutes.
AXES_FAILURE_LIMIT = int(env("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(env("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# Two-step sign-in (access/two_factor.py): the name authenticator apps show.
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", "Consentry")

# Sessions end after this long without a request; privileged ones (staff, stewards,
# auditors, privacy officers, admins) much sooner.
SESSION_COOKIE_AGE = int(env("SESSION_IDLE_MINUTES", "480")) * 60
SESSION_SAVE_EVERY_REQUEST = True
CONSENTRY_PRIVILEGED_IDLE_SECONDS = int(env("PRIVILEGED_IDLE_MINUTES", "30")) * 60

# Rate limits (access/limits.py), counted in the shared cache: "count/period".
CONSENTRY_RATES = {
    "sign_in_address": env("RATE_SIGN_IN_ADDRESS", "30/10m"),  # any usernames, one address
    "sign_in_username": env("RATE_SIGN_IN_USERNAME", "10/10m"),  # one username, any address
    "password_reset": env("RATE_PASSWORD_RESET", "5/h"),  # per address
    "api": env("RATE_API", "12000/m"),  # per token or person: 200/s, the design's load
}
SILENCED_SYSTEM_CHECKS = [
    # Our cache is Django's RedisCache (config/cache.py): shared, with atomic increments;
    # django-ratelimit lists only django-redis by name.
    "django_ratelimit.W001",
]
if not REDIS_URL:
    # Embedded mode is one process: its local cache is the only one there is.
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
# Languages the patient pages are translated into (locale/); more are one .po file each.
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
                    if PRODUCTION else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Embedded mode serves static files straight from the apps, no collectstatic needed.
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Uploads larger than this go to a temporary file rather than memory (DICOM can be large).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1000
# One DICOM file uploaded through the API (registry/uploads.py); larger ones come from the
# PACS or ingest_dicom. The web server in front should cap request bodies too.
CONSENTRY_MAX_DICOM_UPLOAD_BYTES = int(env("MAX_DICOM_UPLOAD_MB", "512")) * 2**20

SMTP_SCHEMES = {"smtp": (25, False, False), "smtp+tls": (587, True, False),
                "smtps": (465, False, True)}


def smtp_options(*, url: str = "") -> dict:
    """The SMTP mailer's OPTIONS: from ``EMAIL_URL`` (``smtp://`` plain, ``smtp+tls://``
    STARTTLS, ``smtps://`` TLS from the start; user and password URL-encoded), else from
    ``EMAIL_HOST``, ``EMAIL_PORT``, ``EMAIL_HOST_USER``, ``EMAIL_HOST_PASSWORD``,
    ``EMAIL_USE_TLS``, ``EMAIL_USE_SSL`` (host ``localhost`` by default, a local relay)."""
    timeout = int(env("EMAIL_TIMEOUT", "10"))  # a stuck server must not hold a worker
    if url:
        parts = urlsplit(url)
        if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
            raise ImproperlyConfigured(
                f"EMAIL_URL must look like smtp://user:password@host:port (or smtp+tls://, "
                f"smtps://), not {parts.scheme}://…")
        port, use_tls, use_ssl = SMTP_SCHEMES[parts.scheme]
        return {"host": parts.hostname, "port": parts.port or port, "use_tls": use_tls,
                "use_ssl": use_ssl, "username": unquote(parts.username or ""),
                "password": unquote(parts.password or ""), "timeout": timeout}
    use_ssl = env_bool("EMAIL_USE_SSL")
    use_tls = env_bool("EMAIL_USE_TLS")
    return {"host": env("EMAIL_HOST", "localhost"),
            "port": int(env("EMAIL_PORT", "465" if use_ssl else "587" if use_tls else "25")),
            "use_tls": use_tls, "use_ssl": use_ssl, "username": env("EMAIL_HOST_USER"),
            "password": env("EMAIL_HOST_PASSWORD"), "timeout": timeout}


EMAIL_BACKEND_NAME = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION or env("EMAIL_URL")
    or env("EMAIL_HOST") else "django.core.mail.backends.console.EmailBackend")
MAILERS = {
    "default": {
        "BACKEND": EMAIL_BACKEND_NAME,
        # Django 6.1's SMTP mailer takes its server from OPTIONS only (no EMAIL_HOST).
        **({"OPTIONS": smtp_options(url=env("EMAIL_URL"))}
           if EMAIL_BACKEND_NAME.endswith("smtp.EmailBackend") else {}),
    },
}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "consentry@localhost")
# Where links in emails point (invitations, password resets sent by workers, not requests).
# Who people can ask, shown on the help page and the error pages.
CONSENTRY_HELP_CONTACT = {
    "name": env("HELP_CONTACT_NAME", "the hospital's privacy office"),
    "email": env("HELP_CONTACT_EMAIL", "privacy@hospital.example"),
    "phone": env("HELP_CONTACT_PHONE", ""),
}

CONSENTRY_BASE_URL = env("CONSENTRY_BASE_URL", "http://127.0.0.1:8000")

# Security headers; the deploy checks must pass in production.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION and not DEBUG
CSRF_COOKIE_SECURE = PRODUCTION and not DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=PRODUCTION and not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY") else None
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000" if PRODUCTION else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Everything is served by the app itself: no CDN, no inline script.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],  # Swagger UI sets inline styles
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

REST_FRAMEWORK = {
    "DEFAULT_THROTTLE_CLASSES": ["access.limits.ApiRateLimit"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.api_auth.ApiTokenAuthentication",
        # Browsers keep CSRF protection: DRF's session authentication enforces it.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON in, JSON out; the DICOM upload opts into multipart on its own.
    "DEFAULT_PARSER_CLASSES": ["config.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Consentry API",
    "DESCRIPTION": "Consent registry and export gate for medical imaging.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema and its docs describe the API, not anyone's data: readable without login.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api_errors.document_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ConsentSourceEnum": "consent.models.choices.Source",
        "StaffSourceEnum": "consent.api.resources.STAFF_SOURCES",
    },
}

# Celery: with no broker the embedded default runs tasks inline, after commit.
CELERY_BROKER_URL = REDIS_URL or "memory://"
# How long a worker holds an outbox message before the sweeper may give it to another: longer
# than the longest job (a large export), short enough that a killed worker's job resumes soon.
OUTBOX_LEASE_SECONDS = int(env("OUTBOX_LEASE_SECONDS", "1800"))
# Exports are cut into shards of this many studies that worker processes claim one at a
# time; a claim lasts this long unless its worker renews it (it does, while it writes), so
# a killed worker's shard is taken over after at most one lease.
EXPORT_SHARD_STUDIES = int(env("EXPORT_SHARD_STUDIES", "20"))
EXPORT_SHARD_LEASE_SECONDS = int(env("EXPORT_SHARD_LEASE_SECONDS", "300"))
# With no broker, tasks run inline unless CONSENTRY_TASKS_INLINE=false: then they wait in
# the database (the outbox) for `manage.py embedded_worker`, a second process, so a page can
# show a long job's progress while it runs (`make demo` does this for its export).
TASKS_INLINE = env_bool("CONSENTRY_TASKS_INLINE", True)
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL and TASKS_INLINE
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE = {
    "outbox-sweep": {"task": "outbox.tasks.sweep", "schedule": 60.0},
    "ledger-seal": {"task": "audit.tasks.seal", "schedule": 30.0},
    "ledger-checkpoint": {"task": "audit.tasks.checkpoint", "schedule": 10 * 60.0},
    "ledger-verify": {"task": "audit.tasks.verify", "schedule": 24 * 60 * 60.0},
    "consent-expiry-reminders": {"task": "consent.tasks.remind_expiring",
                                 "schedule": 24 * 60 * 60.0},
    "datasets-export-shards-sweep": {"task": "datasets.tasks.export_shards_sweep",
                                     "schedule": 60.0},
    "datasets-lapsed-consent": {"task": "datasets.tasks.notice_lapsed_consent",
                                "schedule": 24 * 60 * 60.0},
}

# Consentry's own settings.
# Ed25519 private key (PEM) that signs ledger checkpoints; the embedded install keeps its own.
CONSENTRY_LEDGER_SIGNING_KEY = env("CONSENTRY_LEDGER_SIGNING_KEY")
# Where checkpoints are written: keep it outside the database, ideally write-once storage.
CONSENTRY_CHECKPOINT_DIR = env("CONSENTRY_CHECKPOINT_DIR")
# The export key (datasets/signing.py): the private key as PEM, and a directory of previous
# public keys (*.pem) still published after a rotation so older exports verify.
CONSENTRY_EXPORT_SIGNING_KEY = env("CONSENTRY_EXPORT_SIGNING_KEY")
CONSENTRY_EXPORT_KEYS_DIR = env("CONSENTRY_EXPORT_KEYS_DIR")
CONSENTRY_DEFAULT_MRN_ISSUER = env("CONSENTRY_DEFAULT_MRN_ISSUER", "LOCAL")
# Folders with more files than this go to a Celery worker when one is configured.
CONSENTRY_INGEST_BACKGROUND_THRESHOLD = int(env("CONSENTRY_INGEST_BACKGROUND_THRESHOLD", "500"))
# A background job is cut into shards of this many files, each taken by any worker process.
CONSENTRY_INGEST_SHARD_FILES = int(env("CONSENTRY_INGEST_SHARD_FILES", "500"))


def env_map(name: str) -> dict[str, str]:
    """``key=value,key=value`` (split at the last ``=``, so keys may hold colons)."""
    pairs = (item.rpartition("=") for item in env_list(name))
    return {key.strip(): value.strip() for key, sep, value in pairs if sep and key.strip()}


# Beside a PACS and an EHR (README, "Beside a PACS and an EHR").
# FHIR patient identifier systems and the MRN issuer each stands for, e.g.
# "urn:oid:2.16.840.1.113883.19.5=HOSP" (urn:consentry:mrn:<issuer> is always understood).
CONSENTRY_FHIR_MRN_SYSTEMS = env_map("CONSENTRY_FHIR_MRN_SYSTEMS")
# The DICOM listener: its AE title, and the calling AE titles it accepts (empty: any).
CONSENTRY_DICOM_AE_TITLE = env("CONSENTRY_DICOM_AE_TITLE", "CONSENTRY")
CONSENTRY_DICOM_ALLOWED_AES = env_list("CONSENTRY_DICOM_ALLOWED_AES")
# DICOMweb sources, "name=base URL"; credentials, when needed, as "name=user:password".
CONSENTRY_DICOMWEB_SOURCES = env_map("CONSENTRY_DICOMWEB_SOURCES")
CONSENTRY_DICOMWEB_CREDENTIALS = env_map("CONSENTRY_DICOMWEB_CREDENTIALS")
# How often the periodic job polls DICOMweb sources (seconds; 0 turns it off).
CONSENTRY_DICOMWEB_POLL_SECONDS = float(env("CONSENTRY_DICOMWEB_POLL_SECONDS", "900"))
# Where datasets may be delivered, "name=dicom://AE@host:port" (C-STORE) or
# "name=stow+http://host/dicom-web" (STOW-RS; stow+https for TLS).
CONSENTRY_DESTINATIONS = env_map("CONSENTRY_DESTINATIONS")
if CONSENTRY_DICOMWEB_SOURCES and CONSENTRY_DICOMWEB_POLL_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["dicomweb-poll"] = {"task": "registry.tasks.poll_dicomweb",
                                             "schedule": CONSENTRY_DICOMWEB_POLL_SECONDS}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "WARNING")},
    # pydicom warns about every odd file it still reads; registration reports its own
    # reasons, and its log lines could carry header values (PHI).
    "loggers": {"pydicom": {"level": "ERROR"}},
}
