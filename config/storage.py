"""Static files under hashed names once collected, plain names before."""

from __future__ import annotations

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.core.files.storage import FileSystemStorage


class HashedStaticFilesStorage(ManifestStaticFilesStorage):
    """Django's manifest storage: ``collectstatic`` writes ``base.<hash>.css`` and a
    manifest, so the files can be cached for ever (nginx serves them so).

    Until ``collectstatic`` has run (development, the test suite) there is no
    manifest, and URLs keep the plain names that the staticfiles finders serve,
    instead of failing on every page that links a static file.
    """

    manifest_strict = False

    def url(self, name: str | None, force: bool = False) -> str:
        if not self.hashed_files:
            return FileSystemStorage.url(self, name)
        return super().url(name, force)  # type: ignore[arg-type]  # stubs: name is optional
