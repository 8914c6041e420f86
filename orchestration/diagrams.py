"""Mermaid flowcharts of pipelines, drawn from the registry's description.

``flowchart(description)`` draws a declared pipeline: critical steps as solid
boxes, best-effort steps as dashed rounded ones, a bypass edge around each
conditional step, a retry policy as a line of its step's box, the compensation
hanging off the step it undoes, and the after-commit tail behind a ``commit`` node.

``flowchart(description, run=steps)`` draws the same pipeline with one run's
path over it: each step coloured by what happened to it (``ok``, ``failed``,
``timed_out``, ``skipped``, ``compensated``, ``deferred``, ``not_run``...) and
labelled with its time and attempts. An after-commit step the run queued is
``queued``; the run page passes instead what its worker made of it since
(``ok``, ``failed``, ``running``, or ``queued`` again with its attempts and
last error after a 503-class failure). A parallel group is a box holding its
steps side by side, which the line enters and leaves as one. The output is
deterministic, so a generated copy (docs/example-project.md) can be checked for staleness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Node styles. Declared pipelines use the first two; a run's overlay the rest.
CLASS_DEFS = {
    "critical": "fill:#eef2ff,stroke:#3730a3,stroke-width:2px,color:#1e1b4b",
    "best_effort": "fill:#f8fafc,stroke:#64748b,stroke-dasharray:5 3,color:#334155",
    "compensation": "fill:#fff7ed,stroke:#c2410c,stroke-dasharray:3 3,color:#7c2d12",
    "ok": "fill:#dcfce7,stroke:#15803d,stroke-width:2px,color:#14532d",
    "failed": "fill:#fee2e2,stroke:#b91c1c,stroke-width:4px,color:#7f1d1d",
    "timed_out": "fill:#fee2e2,stroke:#b91c1c,stroke-width:4px,color:#7f1d1d",
    "compensated": "fill:#ffedd5,stroke:#c2410c,stroke-width:2px,color:#7c2d12",
    "skipped": "fill:#f1f5f9,stroke:#94a3b8,stroke-dasharray:4 3,color:#475569",
    "deferred": "fill:#e0e7ff,stroke:#4338ca,stroke-dasharray:4 3,color:#312e81",
    "queued": "fill:#e0e7ff,stroke:#4338ca,stroke-dasharray:4 3,color:#312e81",
    "running": "fill:#e0e7ff,stroke:#4338ca,stroke-width:2px,color:#312e81",
    "not_run": "fill:#ffffff,stroke:#cbd5e1,stroke-dasharray:2 4,color:#94a3b8",
}

#: A step of a run whose pipeline has no record of it (the run stopped before it).
NOT_RUN = "not_run"


def node_id(step: str) -> str:
    """Mermaid ids must not collide with keywords such as ``end``: prefix them."""
    return f"step_{step}"


def _text(value: str) -> str:
    """Escape a label for a quoted Mermaid string."""
    return (
        value.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )


def _milliseconds(value: float) -> str:
    return f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"


def _retry_policy(step: Mapping[str, Any]) -> str | None:
    """A retry policy as a line of the step's box. Drawn as a loop back into the box,
    Mermaid lays its label over the boxes beside it."""
    retry = step.get("retry")
    if not retry:
        return None
    return f"retried up to {retry['attempts']} attempts on {', '.join(retry['on'])}"


def _label(step: Mapping[str, Any], outcome: Mapping[str, Any] | None) -> str:
    lines = [step["name"]]
    policy = _retry_policy(step)
    if outcome is None:
        flags = ["critical" if step["critical"] else "best effort"]
        if step.get("timeout") is not None:
            flags.append(f"{step['timeout']:g} s budget")
        lines.append(", ".join(flags))
        if policy:
            lines.append(policy)
    else:
        status = outcome["status"]
        details = [status.replace("_", " ")]
        if status not in (NOT_RUN, "skipped", "deferred", "queued", "running"):
            details.append(_milliseconds(float(outcome.get("duration_ms") or 0.0)))
        if (outcome.get("attempts") or 0) > 1:
            details.append(f"{outcome['attempts']} attempts")
        lines.append(" · ".join(details))
        if outcome.get("error_code"):
            lines.append(str(outcome["error_code"]))
        if policy:
            lines.append(policy)
    return "<br/>".join(_text(line) for line in lines)


def _node(step: Mapping[str, Any], outcome: Mapping[str, Any] | None) -> str:
    label = _label(step, outcome)
    if step["critical"]:
        return f'{node_id(step["name"])}["{label}"]'
    return f'{node_id(step["name"])}("{label}")'


def flowchart(
    description: Mapping[str, Any],
    *,
    run: Iterable[Mapping[str, Any]] | None = None,
    direction: str = "TD",
) -> str:
    """The Mermaid source of one orchestrator (``registry.describe`` output).

    ``run``: the per-step outcomes of one run (``name``, ``status``,
    ``attempts``, ``duration_ms``, ``error_code``; ``compensation`` is
    ``"failed"`` when the step's compensation raised). Steps it does not
    mention are drawn as not run.
    """
    outcomes = None if run is None else {outcome["name"]: outcome for outcome in run}
    steps = list(description["steps"])
    main = [step for step in steps if not step.get("after_commit")]
    tail = [step for step in steps if step.get("after_commit")]
    name = description["name"]
    lines = [f"flowchart {direction}", f'    start(["{_text(name)}"])']
    classes: dict[str, list[str]] = {}

    def declare(step: Mapping[str, Any]) -> None:
        outcome = None
        if outcomes is not None:
            outcome = outcomes.get(step["name"], {"name": step["name"], "status": NOT_RUN})
        lines.append(f"    {_node(step, outcome)}")
        if outcome is None:
            style = "critical" if step["critical"] else "best_effort"
        else:
            style = outcome["status"] if outcome["status"] in CLASS_DEFS else NOT_RUN
        classes.setdefault(style, []).append(node_id(step["name"]))

    for step in main:
        if step.get("branches"):
            # A parallel group: its steps side by side in a box the line runs through.
            label = _text(f"{step['name']}: at the same time")
            lines.append(f'    subgraph {node_id(step["name"])}["{label}"]')
            lines.append("    direction LR")
            for branch in step["branches"]:
                declare(branch)
            lines.append("    end")
        else:
            declare(step)
    if tail:
        lines.append('    commit{{"commit"}}')
        lines.append('    subgraph after_commit["after commit, best effort"]')
        for step in tail:
            declare(step)
        lines.append("    end")
    lines.append('    done(["done"])')

    # The line the steps run along, with a bypass around each conditional step.
    chain: list[tuple[str, Mapping[str, Any] | None]] = [("start", None)]
    chain += [(node_id(step["name"]), step) for step in main]
    if tail:
        chain.append(("commit", None))
        chain += [(node_id(step["name"]), step) for step in tail]
    chain.append(("done", None))
    for index in range(1, len(chain)):
        lines.append(f"    {chain[index - 1][0]} --> {chain[index][0]}")
    for index, (_, step) in enumerate(chain):
        if step is not None and step.get("conditional"):
            condition = _text(step.get("condition") or "its condition")
            source, target = chain[index - 1][0], chain[index + 1][0]
            lines.append(f'    {source} -. "skipped unless {condition}" .-> {target}')

    grouped = [branch for entry in steps for branch in entry.get("branches") or ()]
    for step in [*steps, *grouped]:
        if step.get("branches"):
            continue
        identifier = node_id(step["name"])
        if step.get("compensated"):
            undo = f"{identifier}__undo"
            compensation = _text(step.get("compensation") or "compensate")
            outcome = None if outcomes is None else outcomes.get(step["name"])
            state = ""
            if outcome is not None and outcome.get("status") == "compensated":
                state = "<br/>ran"
            elif outcome is not None and outcome.get("compensation") == "failed":
                state = "<br/>FAILED"
            journaled = (
                "<br/>journaled: undone by recovery after a crash" if step.get("journaled") else ""
            )
            lines.append(f'    {undo}[/"undo: {compensation}{journaled}{state}"/]')
            lines.append(f'    {identifier} -. "if a later step fails" .-> {undo}')
            classes.setdefault("compensation", []).append(undo)

    for style in CLASS_DEFS:
        if style in classes:
            lines.append(f"    classDef {style} {CLASS_DEFS[style]}")
            lines.append(f"    class {','.join(classes[style])} {style}")
    return "\n".join(lines) + "\n"


def markdown(descriptions: Iterable[Mapping[str, Any]]) -> str:
    """A Markdown block per orchestrator: its name, class and diagram in a fence."""
    blocks = []
    for description in descriptions:
        blocks.append(
            f"**`{description['name']}`** (`{description['class']}`)\n\n"
            f"```mermaid\n{flowchart(description)}```"
        )
    return "\n\n".join(blocks) + "\n"


#: The generated part of a Markdown file sits between these two lines.
BEGIN_MARKER = (
    "<!-- orchestrators: generated by `manage.py orchestrators --readme`; do not edit -->"
)
END_MARKER = "<!-- /orchestrators -->"


def replace_generated_block(text: str, block: str) -> str:
    """``text`` with the part between the markers replaced by ``block``.

    Raises ValueError when the markers are missing or out of order.
    """
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if begin < 0 or end < begin:
        raise ValueError(f"the file needs the lines {BEGIN_MARKER!r} and then {END_MARKER!r}")
    return f"{text[: begin + len(BEGIN_MARKER)]}\n\n{block}\n{text[end:]}"


def css(style: str) -> str:
    """A node style as CSS for an HTML legend (``fill`` is the background, ``stroke``
    the border)."""
    properties = dict(part.split(":", 1) for part in style.split(","))
    rules = [
        f"background-color: {properties.get('fill', 'transparent')}",
        (
            f"border: {properties.get('stroke-width', '1px')} "
            f"{'dashed' if 'stroke-dasharray' in properties else 'solid'} "
            f"{properties.get('stroke', 'transparent')}"
        ),
    ]
    if "color" in properties:
        rules.append(f"color: {properties['color']}")
    return "; ".join(rules)
