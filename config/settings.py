"""Project settings, read once from the environment (django-environ).

Every variable is documented in README.md. A misconfigured variable stops the
process at start with ImproperlyConfigured naming it.
"""

from datetime import timedelta
from pathlib import Path

import django
import environ
from django.core.exceptions import ImproperlyConfigured

from config.clients import parse_trusted_proxies
from config.local_apps import LOCAL_APPS

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

#: Development defaults that `make install` writes (never committed). Variables already in
#: the environment win; DJANGO_ENV_FILE names another file, or none when empty (the test
#: suite and `make serve` read none).
ENV_FILE = env.str("DJANGO_ENV_FILE", default=str(BASE_DIR / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    environ.Env.read_env(ENV_FILE)


def _read(name: str, reader, **kwargs):
    """Read one variable, naming it in the error when its value is malformed."""
    try:
        return reader(name, **kwargs)
    except Exception as exc:
        raise ImproperlyConfigured(f"{name} is malformed: {exc}") from exc


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}


def _bool(name: str, *, default: bool) -> bool:
    """A strict boolean: a typo such as DJANGO_DEBUG=ture is an error, not False."""
    raw = env.str(name, default="").strip().lower()
    if not raw:
        return default
    if raw not in _BOOLEANS:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, on/off.")
    return _BOOLEANS[raw]


def _number(name: str, kind: type[int] | type[float], *, default: float) -> float:
    raw = env.str(name, default="").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number ({kind.__name__}).") from None


DEBUG = _bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = _read(
    "DJANGO_ALLOWED_HOSTS",
    env.list,
    default=["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [],
)

# Django's Tasks framework: built in from Django 6.0 (django.tasks), the django-tasks
# backport (an app of its own) on 5.2.
_BUILT_IN_TASKS = django.VERSION >= (6, 0)
_TASKS_PACKAGE = "django.tasks" if _BUILT_IN_TASKS else "django_tasks"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "axes",
    "config.apps.ProjectConfig",
    *([] if _BUILT_IN_TASKS else ["django_tasks"]),
    "django_tasks_db",
    *LOCAL_APPS,
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "orchestration.middleware.TimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin, Swagger UI, ReDoc) from the app server itself, collected
    # and under hashed names, so pages are styled behind any proxy or none.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "orchestration.middleware.CommonMiddleware",
    "orchestration.middleware.RequestBodyMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: it turns a login form's lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-wide overrides of third-party templates (ReDoc without web fonts).
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# django-prometheus wraps each database backend so that query counts and
# latencies are exported next to the orchestrator metrics.
_PROMETHEUS_ENGINES = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}
DATABASES = {
    "default": _read("DATABASE_URL", env.db_url, default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"].get("ENGINE") not in _PROMETHEUS_ENGINES:
    raise ImproperlyConfigured(
        "DATABASE_URL must be a postgres://user@host:port/name or sqlite:///path URL."
    )
DATABASES["default"]["ENGINE"] = _PROMETHEUS_ENGINES[DATABASES["default"]["ENGINE"]]
# A deadline on every wait for the database: connecting, each statement on the server,
# and each round trip on the client (a stopped server never enforces its own timeout).
DATABASE_CONNECT_TIMEOUT = _number("DATABASE_CONNECT_TIMEOUT", int, default=3)
DATABASE_STATEMENT_TIMEOUT = _number("DATABASE_STATEMENT_TIMEOUT", float, default=5.0)
for _name, _value in (
    ("DATABASE_CONNECT_TIMEOUT", DATABASE_CONNECT_TIMEOUT),
    ("DATABASE_STATEMENT_TIMEOUT", DATABASE_STATEMENT_TIMEOUT),
):
    if _value <= 0:
        raise ImproperlyConfigured(f"{_name} must be a positive number of seconds.")
if "sqlite" in DATABASES["default"]["ENGINE"]:
    # Concurrent gunicorn workers wait for SQLite's write lock instead of failing at once.
    # IMMEDIATE: a transaction takes the write lock when it begins; a deferred one that
    # reads first fails with "database is locked" at its first write, without waiting.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
else:
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
    # A peer that vanished (a failover, a cut network) is noticed by the kernel: idle
    # connections are probed after 10 s, and unacknowledged data fails after the
    # statement deadline, instead of the kernel's 15 minutes of retransmissions.
    _options.setdefault("keepalives", 1)
    _options.setdefault("keepalives_idle", 10)
    _options.setdefault("keepalives_interval", 3)
    _options.setdefault("keepalives_count", 3)
    _options.setdefault("tcp_user_timeout", int((DATABASE_STATEMENT_TIMEOUT + 2) * 1000))
    _statement_ms = int(DATABASE_STATEMENT_TIMEOUT * 1000)
    _options["options"] = (
        f"{_options.get('options', '')} -c statement_timeout={_statement_ms}".strip()
    )
    # The server cancels a slow statement first; this catches a server that cannot.
    DATABASES["default"]["QUERY_DEADLINE"] = DATABASE_STATEMENT_TIMEOUT + 2

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Throttle counts (and anything else cached) are shared by every worker: by default in a
# table of the database (created by `migrate`), with CACHE_URL=redis://host:6379/0 in Redis.
CACHES = {"default": _read("CACHE_URL", env.cache_url, default="dbcache://django_cache")}

# Who the client is (throttles, login lockouts): TRUSTED_PROXIES is the number of proxies
# in front of the app (`make serve`: 1, nginx) or their networks (10.0.0.0/8,...).
# Default: none, so a client's own X-Forwarded-For is ignored.
TRUSTED_PROXIES = _read(
    "TRUSTED_PROXIES", lambda name, **kw: parse_trusted_proxies(env.str(name, **kw)), default="0"
)

# Login protection (django-axes) for the admin, the browsable API login and the token
# endpoint: AXES_FAILURE_LIMIT failed attempts for one username from one address lock
# that pair out for AXES_COOLOFF_MINUTES; an admin unlocks it earlier (Axes > Access attempts).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(_number("AXES_FAILURE_LIMIT", int, default=5))
AXES_COOLOFF_TIME = timedelta(minutes=_number("AXES_COOLOFF_MINUTES", float, default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.clients.client_ip"
AXES_LOCKOUT_CALLABLE = "config.lockout.lockout_response"
AXES_USERNAME_FORM_FIELD = "username"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = _read("STATIC_ROOT", env.path, default=BASE_DIR / "var" / "static")
# collectstatic writes each file under a name with its content's hash (served with
# far-future caching by nginx, see `make serve`); before it has run, the plain names.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "config.storage.HashedStaticFilesStorage"},
}

# Email: consolemail:// for development, smtp://host:port in production.
_email = _read("EMAIL_URL", env.email_url, default="consolemail://")
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    # The same SMTP backend, with EMAIL_TIMEOUT (or a step's budget) as an overall deadline.
    _email["EMAIL_BACKEND"] = "orchestration.mail.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="orders@example.com")
_email_timeout = _number("EMAIL_TIMEOUT", float, default=5.0)
if django.VERSION >= (6, 1):
    # Django 6.1 configures mail in MAILERS; its EMAIL_* settings are deprecated.
    _SMTP_OPTIONS = {
        "EMAIL_HOST": "host",
        "EMAIL_PORT": "port",
        "EMAIL_HOST_USER": "username",
        "EMAIL_HOST_PASSWORD": "password",
        "EMAIL_USE_TLS": "use_tls",
        "EMAIL_USE_SSL": "use_ssl",
    }
    _mail_options: dict[str, object] = {}
    if _email["EMAIL_BACKEND"] == "orchestration.mail.EmailBackend":
        _mail_options = {
            option: _email[name]
            for name, option in _SMTP_OPTIONS.items()
            if _email.get(name) is not None
        }
        _mail_options["timeout"] = _email_timeout
    elif _email["EMAIL_FILE_PATH"]:
        _mail_options = {"file_path": _email["EMAIL_FILE_PATH"]}
    MAILERS = {"default": {"BACKEND": _email["EMAIL_BACKEND"], "OPTIONS": _mail_options}}
else:
    vars().update(_email)
    EMAIL_TIMEOUT = _email_timeout

# After-commit steps are tasks of Django's Tasks API (django.tasks; the backport on 5.2).
# database: stored in DATABASE_URL's database, run by `manage.py db_worker` (the default);
# rq: Redis (TASKS_REDIS_URL), run by `manage.py rqworker` on any number of machines;
# immediate: run in the web process right after the commit (development, some tests).
TASKS_BACKEND = env.str("TASKS_BACKEND", default="database")
_TASK_BACKENDS = {
    "database": "django_tasks_db.DatabaseBackend",
    "rq": "django_tasks_rq.RQBackend",
    "immediate": f"{_TASKS_PACKAGE}.backends.immediate.ImmediateBackend",
}
if TASKS_BACKEND not in _TASK_BACKENDS:
    raise ImproperlyConfigured(
        f"TASKS_BACKEND={TASKS_BACKEND!r} is not one of: {', '.join(_TASK_BACKENDS)}."
    )
TASKS = {"default": {"BACKEND": _TASK_BACKENDS[TASKS_BACKEND]}}
if TASKS_BACKEND == "rq":
    INSTALLED_APPS.append("django_rq")
    RQ_QUEUES = {
        "default": {
            "URL": env.str("TASKS_REDIS_URL", default="redis://127.0.0.1:6379/0"),
            # Seconds RQ lets one task run; the step's own budget is far shorter.
            "DEFAULT_TIMEOUT": 600,
        }
    }
    RQ = {"JOB_CLASS": "django_tasks_rq.Job"}  # so that `manage.py rqworker` runs Tasks

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.auth.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "orchestration.drf.exception_handler",
    # One parser for every endpoint: JSON only, UTF-8 only, bounded in depth and size.
    "DEFAULT_PARSER_CLASSES": ["orchestration.parsers.JSONParser"],
    "DEFAULT_THROTTLE_RATES": {"token": env.str("TOKEN_THROTTLE_RATE", default="20/min")},
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default=SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
    # Access tokens carry a hash of the password: changing it ends them at once.
    "CHECK_REVOKE_TOKEN": True,
    "TOKEN_OBTAIN_SERIALIZER": "config.auth.TokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "config.auth.TokenRefreshSerializer",
}
# However often a refresh token is rotated, its chain ends this long after the login.
JWT_SESSION_MAX_AGE = timedelta(days=_number("JWT_SESSION_MAX_AGE_DAYS", float, default=30))

_SYSTEM_FONTS = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
SPECTACULAR_SETTINGS = {
    "TITLE": "Orchestrated services API",
    "DESCRIPTION": (
        "Endpoints built from declared pipelines. Orchestrated endpoints answer "
        "with one envelope: success, data or error, duration and per-step "
        "metrics in milliseconds, warnings and the request id."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The system's fonts: ReDoc's default ones would come from a font CDN.
    "REDOC_UI_SETTINGS": {
        "theme": {
            "typography": {
                "fontFamily": _SYSTEM_FONTS,
                "headings": {"fontFamily": _SYSTEM_FONTS},
            }
        }
    },
    "COMPONENT_SPLIT_REQUEST": True,
    # Group operations by the path segment after /api/: auth, orders, products, ...
    "SCHEMA_PATH_PREFIX": r"/api/",
}

PAYMENT_GATEWAY = env.str("PAYMENT_GATEWAY", default="orders.payments.FakeGateway")
#: Seconds each fake quote service takes to answer (see orders/quotes.py).
ORDERS_QUOTE_LATENCY = {"shipping": 0.12, "tax": 0.08}
# Seconds a charge or refund may take, retries included: below the worker timeout.
PAYMENT_TIMEOUT = _number("PAYMENT_TIMEOUT", float, default=10.0)
# The fake gateway's books, shared by every process that uses it.
FAKE_GATEWAY_BOOKS = env.str(
    "FAKE_GATEWAY_BOOKS", default=str(BASE_DIR / "var" / "fake-gateway.sqlite3")
)

PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} is not a directory; "
        "create it (empty) before the server starts."
    )

# Keep the metrics label sets bounded: django-prometheus exports the view name, never the URL.
PROMETHEUS_EXPORT_MIGRATIONS = False

# The orchestration app's settings (defaults and meanings: README.md, "Settings").
ORCHESTRATION = {
    # Turn the Prometheus metrics of the engine off (timings in results stay on).
    "METRICS": _bool("ORCHESTRATION_METRICS", default=True),
    # When set, /metrics requires `Authorization: Bearer <token>`.
    "METRICS_TOKEN": env.str("METRICS_TOKEN", default=""),
    # Seconds a run holds its journaled effects before recover_effects may undo them:
    # longer than any run lives (GUNICORN_TIMEOUT).
    "EFFECT_LEASE": float(_number("ORCHESTRATION_EFFECT_LEASE", float, default=120.0)),
    # The journal's pre-call commit waits for the disk (docs/guarantees.md); 0 opts out.
    "JOURNAL_SYNCHRONOUS_COMMIT": _bool("ORCHESTRATION_JOURNAL_SYNCHRONOUS_COMMIT", default=True),
    # Run records for the admin's run explorer: every failure, this share of successes.
    "RUN_RECORDS": _bool("ORCHESTRATION_RUN_RECORDS", default=True),
    "RUN_RECORD_SAMPLE_RATE": _number("ORCHESTRATION_RUN_SAMPLE_RATE", float, default=0.01),
    "RUN_RECORD_RETENTION_DAYS": _number("ORCHESTRATION_RUN_RETENTION_DAYS", int, default=30),
    # Queued after-commit steps (see orchestration.outbox): seconds before the relay
    # dispatches again a step still queued, and the grace added to a step's budget for
    # the lease of the worker running it.
    "QUEUE_RELAY_AFTER": _number("TASKS_RELAY_AFTER", float, default=30.0),
    "QUEUE_LEASE_GRACE": _number("TASKS_LEASE_GRACE", float, default=30.0),
}

DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = _bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = _number("DJANGO_SECURE_HSTS_SECONDS", int, default=60 * 60 * 24 * 30)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^ready/$", r"^metrics$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "orchestration.logging.RequestIdFilter"},
        "skip_logged_errors": {"()": "orchestration.logging.SkipLoggedErrorResponses"},
    },
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s [%(request_id)s trace=%(trace_id)s] %(name)s: "
            "%(message)s"
        },
        "server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "plain",
        },
        "server": {"class": "logging.StreamHandler", "formatter": "server"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # django-axes logs every failed login at INFO; its warnings (lockouts) are enough.
        "axes": {"level": "WARNING"},
        # Django's own console handler would print every django.* record a second time.
        "django": {"handlers": [], "level": "NOTSET", "propagate": True},
        # runserver's access log, as Django formats it; its 4xx/5xx lines are dropped because
        # django.request logs them (with the request id).
        "django.server": {
            "handlers": ["server"],
            "filters": ["skip_logged_errors"],
            "level": "INFO",
            "propagate": False,
        },
    },
}
