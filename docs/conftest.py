"""The Python examples of the documentation pages run as tests (Sybil), one namespace per page.

The tutorial's blocks are files of a fresh project: tests/docs/test_tutorial.py builds that
project and runs its tests. Every other page's Python blocks run here, in order, against the
example project's settings and the test database.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

from orchestration.testing import isolated_registry


def setup(namespace: dict[str, Any]) -> None:
    # Dataclasses defined in a page resolve their module through sys.modules.
    module = types.ModuleType(f"docs_example_{id(namespace)}")
    sys.modules[module.__name__] = module
    namespace["__name__"] = module.__name__
    registry = isolated_registry()
    registry.__enter__()
    namespace["_docs_cleanup"] = (module.__name__, registry)


def teardown(namespace: dict[str, Any]) -> None:
    name, registry = namespace["_docs_cleanup"]
    registry.__exit__(None, None, None)
    del sys.modules[name]


pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["*.md"],
    excludes=["tutorial.md"],
    fixtures=["db"],
    setup=setup,
    teardown=teardown,
).pytest()
