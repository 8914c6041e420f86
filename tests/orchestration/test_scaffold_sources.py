"""The module edits of the scaffolder: lists, imports, definitions."""

import ast

import pytest

from orchestration.scaffold.names import ScaffoldError
from orchestration.scaffold.sources import append_to_list, find_class, find_list, merge_module


def _append(source: str, name: str, element: str) -> str:
    return append_to_list(source, find_list(ast.parse(source).body, name, "test.py"), element)


def test_append_keeps_a_one_per_line_list_and_its_comments() -> None:
    source = 'APPS = [\n    "a",  # first, and only\n    "b"\n]\n'

    assert (
        _append(source, "APPS", '"c"')
        == 'APPS = [\n    "a",  # first, and only\n    "b",\n    "c",\n]\n'
    )


def test_append_lays_out_a_one_line_list_one_entry_per_line() -> None:
    assert (
        _append('APPS = ["a", "b"]\n', "APPS", '"c"')
        == 'APPS = [\n    "a",\n    "b",\n    "c",\n]\n'
    )


def test_append_to_an_empty_list_and_a_tuple() -> None:
    assert _append("APPS = []\n", "APPS", '"a"') == 'APPS = [\n    "a",\n]\n'
    assert _append('APPS = ("a",)\n', "APPS", '"b"') == 'APPS = (\n    "a",\n    "b",\n)\n'


def test_append_to_a_class_pipeline() -> None:
    source = (
        "class Pay(Base):\n"
        "    pipeline = (\n"
        '        Step("charge", charge),\n'
        "    )\n"
        "\n"
        "class Other(Base):\n"
        '    pipeline = [Step("x", x)]\n'
    )
    tree = ast.parse(source)
    pipeline = find_list(find_class(tree, "Pay", "o.py").body, "pipeline", "o.py")

    edited = append_to_list(source, pipeline, 'Step("notify", notify, critical=False)')

    assert edited == source.replace(
        '        Step("charge", charge),\n',
        '        Step("charge", charge),\n        Step("notify", notify, critical=False),\n',
    )


@pytest.mark.parametrize(
    "source",
    [
        "APPS = ['a']\nAPPS = ['b']\n",  # assigned twice
        "APPS = ['a']\nAPPS += ['b']\n",  # extended elsewhere
        "APPS = list_apps()\n",  # computed
        "OTHER = ['a']\n",  # missing
    ],
)
def test_find_list_refuses_what_it_cannot_edit_safely(source: str) -> None:
    with pytest.raises(ScaffoldError, match="APPS"):
        find_list(ast.parse(source).body, "APPS", "config/local_apps.py")


EXISTING = '''"""Types."""

from dataclasses import dataclass

from orchestration import OperationContext


@dataclass
class Old:
    value: int
'''

GENERATED = '''"""Generated."""

from dataclasses import dataclass

from orchestration import OperationContext, Step


@dataclass
class New(OperationContext):
    note: str
'''


def test_merge_adds_missing_imports_after_the_imports_and_definitions_at_the_end() -> None:
    merged = merge_module(EXISTING, GENERATED, "types.py")

    assert (
        merged
        == EXISTING.replace(
            "from orchestration import OperationContext\n",
            "from orchestration import OperationContext\nfrom orchestration import Step\n",
        )
        + "\n\n@dataclass\nclass New(OperationContext):\n    note: str\n"
    )
    compile(merged, "types.py", "exec")


def test_merge_skips_identical_definitions() -> None:
    once = merge_module(EXISTING, GENERATED, "types.py")

    assert merge_module(once, GENERATED, "types.py") == once


def test_merge_refuses_a_name_defined_differently() -> None:
    clashing = GENERATED.replace("class New", "class Old")

    with pytest.raises(ScaffoldError, match=r"types\.py already defines Old"):
        merge_module(EXISTING, clashing, "types.py")


def test_merge_refuses_an_import_that_rebinds_a_name() -> None:
    clashing = "from other import dataclass\n"

    with pytest.raises(ScaffoldError, match="already defines dataclass"):
        merge_module(EXISTING, clashing, "types.py")


def test_merge_into_a_module_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ScaffoldError, match="does not parse"):
        merge_module("def broken(:\n", GENERATED, "types.py")


@pytest.mark.parametrize("existing", ["", '"""Only a docstring."""\n', "VALUE = 1\n"])
def test_merge_puts_imports_before_any_code(existing: str) -> None:
    merged = merge_module(existing, "import json\n\nDUMPED = json.dumps(1)\n", "module.py")

    tree = ast.parse(merged)
    kinds = [type(node).__name__ for node in tree.body if not isinstance(node, ast.Expr)]
    assert kinds.index("Import") < kinds.index("Assign")
    assert merged.rstrip().endswith("DUMPED = json.dumps(1)")
