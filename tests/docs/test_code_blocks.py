"""Every code block of the README and the documentation is run, or checked, by a test.

Which test depends on the block:

- Python: the README's example by tests/test_readme_example.py, the tutorial's files by
  tests/docs/test_tutorial.py, every other page's blocks by Sybil (docs/conftest.py);
- JSON: a sample response, compared with the server's answer by tests/docs/test_samples.py;
- Mermaid: the example project's pipelines, kept by ``orchestrators --readme --check``;
- shell: the tutorial's and the walkthrough's commands are run (test_tutorial.py,
  tests/test_dev_server.py); in the other blocks, every ``manage.py`` command is parsed by the
  command's own parser and every ``make`` target must exist, here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, get_commands, load_command_class

from orchestration.conf import DEFAULTS, well_typed
from tests.docs.blocks import README, ROOT, Block, blocks, page, pages

TUTORIAL = page("tutorial.md")
EXAMPLE_PROJECT = page("example-project.md")
SYBIL_EXCLUDED = {TUTORIAL}

#: Programs a shell block may run besides `python manage.py` and `make`, and why a test
#: does not run them: they install, build or start something outside the suite's reach.
OTHER_PROGRAMS = {
    "pip": "installs into the reader's environment (tests/package/test_wheel.py: the wheel)",
    "python -m build": "builds the distribution (tests/package/test_wheel.py does)",
    "django-admin": "run by the tutorial's test",
    "curl": "the walkthrough runs live (test_dev_server.py); a sample's request in test_samples.py",
    "export": "sets a variable for the next command",
    "source": "activates the environment that `make install` created",
    "pytest": "the suite itself",
    "promtool": "CI runs it on the generated rules (.ci/run)",
    "prometheus": "tests/integration/test_prometheus.py runs it on the generated configuration",
    "docker": "starts Grafana, which no test runs",
    "bash": "bash .ci/run is CI itself",
}
#: Commands that exist only under other settings than the suite's.
OTHER_SETTINGS_COMMANDS = {"rqworker": "TASKS_BACKEND=rq installs django_rq"}


def every_block() -> list[Block]:
    return [block for path in [README, *pages()] for block in blocks(path)]


def section(path: Path, name: str) -> str:
    return path.read_text().split(f"<!-- section: {name} -->")[1].split("<!-- /section")[0]


def in_section(block: Block, name: str) -> bool:
    return block.body in section(block.path, name)


def commands(body: str) -> list[list[str]]:
    """The shell commands of a block, as words: comments, continuations and leading
    VAR=value assignments removed."""
    found = []
    for line in body.replace("\\\n", " ").splitlines():
        for command in re.split(r"\s(?:&&|;)\s", line):
            words = shlex.split(command, comments=True)
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words = words[1:]
            if words:
                found.append(words)
    return found


def generated_diagrams() -> str:
    text = EXAMPLE_PROJECT.read_text()
    return text.split("<!-- orchestrators:")[1].split("<!-- /orchestrators -->")[0]


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


def check_shell(block: Block) -> list[str]:
    problems = []
    targets = makefile_targets()
    known = get_commands()
    for words in commands(block.body):
        if words[:2] == ["python", "manage.py"]:
            name, arguments = words[2], words[3:]
            if name in OTHER_SETTINGS_COMMANDS:
                continue
            if name not in known:
                problems.append(f"{block}: manage.py {name} is not a command")
                continue
            command = load_command_class(known[name], name)
            parser = command.create_parser("manage.py", name)
            if "--help" not in arguments:
                try:
                    parser.parse_args(arguments)
                except (CommandError, SystemExit):
                    problems.append(f"{block}: manage.py {name} refuses {arguments}")
        elif words[0] == "make":
            problems += [
                f"{block}: make {target} is not a target of the Makefile"
                for target in words[1:]
                if "=" not in target and target not in targets
            ]
        elif not any(" ".join(words).startswith(program) for program in OTHER_PROGRAMS):
            problems.append(f"{block}: no test runs or checks {' '.join(words)!r}")
    return problems


def test_every_block_is_run_or_checked():
    problems = []
    for block in every_block():
        if block.lang == "python":
            if block.path == README and not in_section(block, "example"):
                problems.append(f"{block}: only the README's example is run")
        elif block.lang == "json":
            if not (block.marker and block.marker[0] == "sample"):
                problems.append(f"{block}: a JSON block must be a sample (<!-- sample: name -->)")
        elif block.lang == "mermaid":
            if block.path != EXAMPLE_PROJECT or block.body not in generated_diagrams():
                problems.append(f"{block}: a diagram must be generated (orchestrators --readme)")
        elif block.lang == "sh":
            if block.path == TUTORIAL or (
                block.path == EXAMPLE_PROJECT and in_section(block, "walkthrough")
            ):
                continue  # run as written
            problems += check_shell(block)
        else:
            problems.append(f"{block}: no test knows this kind of block")
    assert problems == []


def test_the_shell_check_catches_a_wrong_command():
    wrong = Block(README, 1, "sh", "python manage.py recover_effects --evry 30\nmake docz\n", None)
    assert len(check_shell(wrong)) == 2


def orchestration_settings(block: Block) -> dict[str, Any] | None:
    namespace: dict[str, Any] = {}
    exec(block.body, namespace)
    return namespace.get("ORCHESTRATION")


@pytest.mark.parametrize(
    "block",
    # The tutorial's settings are not here: tests/docs/test_tutorial.py runs them in its
    # fresh project.
    [
        block
        for block in every_block()
        if block.lang == "python" and "ORCHESTRATION" in block.body and block.path != TUTORIAL
    ],
    ids=str,
)
def test_settings_shown_are_settings_of_the_app(block):
    settings = orchestration_settings(block)
    assert settings, f"{block} does not set ORCHESTRATION"
    assert {key for key in settings if key not in DEFAULTS} == set()
    assert [key for key, value in settings.items() if not well_typed(key, value)] == []
