"""Settings of the benchmark server: the project's, with the baseline view mounted.

Selected with ``DJANGO_SETTINGS_MODULE=tests.bench.settings``; production never
loads it.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "tests.bench.urls"
