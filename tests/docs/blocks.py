"""The fenced code blocks of the documentation, as the tests that run them read them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S
)
MARKER = re.compile(r"<!-- (?P<kind>[a-z-]+): (?P<value>[^>]*?) -->\s*\Z")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    body: str
    marker: tuple[str, str] | None  # the HTML comment right before the fence, if any

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.lang or 'no language'})"


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = MARKER.search(text[: match.start()])
        found.append(
            Block(
                path=path,
                line=text.count("\n", 0, match.start()) + 1,
                lang=match["lang"],
                body=match["body"],
                marker=(before["kind"], before["value"]) if before else None,
            )
        )
    return found


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def page(name: str) -> Path:
    return DOCS / name
