"""A part used without its extra says which extra to install."""

from __future__ import annotations

import pytest

from orchestration.extras import MissingExtra, require


def test_a_missing_module_names_the_extra_and_the_install_command() -> None:
    with pytest.raises(MissingExtra) as raised:
        require("drf", "json", "no_such_module_for_this_test", feature="orchestration.drf")

    assert str(raised.value) == (
        "orchestration.drf needs the [drf] extra (no_such_module_for_this_test not installed): "
        "pip install 'django-orchestration[drf]'"
    )
    assert isinstance(raised.value, ImportError)
    assert raised.value.name == "no_such_module_for_this_test"
