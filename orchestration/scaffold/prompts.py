"""Questions with flags: a flag answers its question; otherwise the user is asked.

With ``interactive=False`` (``--no-input``) a question without a flag takes its
default, and one without a default is an error naming the flag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, TypeVar

from django.core.management import CommandError
from django.core.management.base import OutputWrapper

from orchestration.scaffold.names import ScaffoldError

T = TypeVar("T")

_YES = {"y", "yes", "true", "1"}
_NO = {"n", "no", "false", "0"}


def yes_no(answer: str) -> bool:
    value = answer.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ScaffoldError(f"Answer yes or no, not {answer!r}.")


class Prompter:
    def __init__(
        self, stdin: IO[str], stdout: OutputWrapper, stderr: OutputWrapper, *, interactive: bool
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.interactive = interactive

    def ask(
        self,
        flag: str,
        question: str,
        given: str | None,
        parse: Callable[[str], T],
        *,
        default: str | None = None,
    ) -> T:
        """The parsed answer: from the flag, the user, or the default."""
        if given is not None:
            try:
                return parse(given)
            except ScaffoldError as exc:
                raise CommandError(f"{flag}: {exc}") from exc
        if not self.interactive:
            if default is None:
                raise CommandError(f"{flag} is required with --no-input.")
            try:
                return parse(default)
            except ScaffoldError as exc:
                raise CommandError(f"{flag}: {exc}") from exc
        suffix = f" [{default}]" if default else ""
        while True:
            self.stdout.write(f"{question}{suffix}: ", ending="")
            self.stdout.flush()
            line = self.stdin.readline()
            if not line:
                raise CommandError(f"Input ended before {flag} was answered.")
            answer = line.strip() or (default or "")
            try:
                return parse(answer)
            except ScaffoldError as exc:
                self.stderr.write(str(exc))
