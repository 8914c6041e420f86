"""Edits of existing Python modules, located with ``ast`` rather than by matching text.

Every function takes a module's source and returns the new source, or raises
``ScaffoldError`` when the place to edit cannot be found unambiguously. The
edits only add: an element at the end of a list, imports, top-level
definitions at the end of a module.
"""

from __future__ import annotations

import ast

from orchestration.scaffold.names import ScaffoldError

INDENT = "    "


def parse(source: str, filename: str) -> ast.Module:
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise ScaffoldError(f"{filename} does not parse ({exc.msg}, line {exc.lineno}).") from exc


def _assigned_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [target.id for target in node.targets if isinstance(target, ast.Name)]
    if isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def find_list(body: list[ast.stmt], name: str, where: str) -> ast.List | ast.Tuple:
    """The literal list (or tuple) assigned to ``name`` once in ``body``."""
    assignments = [node for node in body if name in _assigned_names(node)]
    if len(assignments) != 1:
        found = "no" if not assignments else f"{len(assignments)}"
        raise ScaffoldError(
            f"{where}: expected one `{name} = [...]` assignment, found {found}; edit it by hand."
        )
    node = assignments[0]
    value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
    if not isinstance(value, ast.List | ast.Tuple):
        raise ScaffoldError(f"{where}: `{name}` is not a literal list; edit it by hand.")
    return value


def find_class(tree: ast.Module, name: str, where: str) -> ast.ClassDef:
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name]
    if len(classes) != 1:
        raise ScaffoldError(f"{where}: expected one class {name}, found {len(classes)}.")
    return classes[0]


def string_elements(node: ast.List | ast.Tuple, where: str) -> list[str]:
    values = []
    for element in node.elts:
        if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
            raise ScaffoldError(f"{where}: every entry must be a string literal; edit it by hand.")
        values.append(element.value)
    return values


class _Offsets:
    """Converts ast (line, column) positions into offsets in the source string."""

    def __init__(self, source: str) -> None:
        self.starts = [0]
        for line in source.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def __call__(self, line: int, column: int) -> int:
        # ast columns count UTF-8 bytes; the generated project keeps these lines ASCII.
        return self.starts[line - 1] + column


def _line_indent(source: str, offset: int) -> str:
    start = source.rfind("\n", 0, offset) + 1
    line = source[start:offset]
    return line[: len(line) - len(line.lstrip())]


def append_to_list(source: str, node: ast.List | ast.Tuple, element: str) -> str:
    """Add ``element`` (source text) as the last entry of the literal list ``node``.

    A list laid out one entry per line keeps its layout and comments; a list on
    one line is laid out one entry per line.
    """
    assert node.end_lineno is not None
    assert node.end_col_offset is not None
    offset = _Offsets(source)
    start = offset(node.lineno, node.col_offset)
    closing = offset(node.end_lineno, node.end_col_offset) - 1
    outer_indent = _line_indent(source, start)
    closing_on_own_line = not source[source.rfind("\n", 0, closing) + 1 : closing].strip()
    if node.elts and closing_on_own_line and node.elts[0].lineno > node.lineno:
        last = node.elts[-1]
        assert last.end_lineno is not None
        assert last.end_col_offset is not None
        last_end = offset(last.end_lineno, last.end_col_offset)
        tail = source[last_end:closing]
        has_comma = any("," in line.split("#", 1)[0] for line in tail.splitlines())
        indent = _line_indent(source, offset(node.elts[0].lineno, node.elts[0].col_offset))
        line_start = source.rfind("\n", 0, closing) + 1
        new = source[:line_start] + f"{indent}{element},\n" + source[line_start:]
        if not has_comma:
            new = new[:last_end] + "," + new[last_end:]
        return new
    entries = [ast.get_source_segment(source, element_node) for element_node in node.elts]
    entries.append(element)
    indent = outer_indent + INDENT
    opening, closing_char = ("[", "]") if isinstance(node, ast.List) else ("(", ")")
    rendered = opening + "\n" + "".join(f"{indent}{entry},\n" for entry in entries)
    rendered += outer_indent + closing_char
    return source[:start] + rendered + source[closing + 1 :]


def _import_bindings(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str]]:
    """(bound name, canonical import line) for each alias of an import statement."""
    bindings = []
    for alias in node.names:
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            line = f"from {module} import {alias.name}"
        else:
            line = f"import {alias.name}"
        if alias.asname:
            line += f" as {alias.asname}"
        bound = alias.asname or alias.name.split(".")[0]
        bindings.append((bound, line))
    return bindings


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    return _assigned_names(node)


def _leading_imports_end(tree: ast.Module) -> int | None:
    """The last line of the imports at the top of a module (after its docstring)."""
    end = None
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            end = node.end_lineno
        elif index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            end = node.end_lineno if end is None else end
        else:
            break
    return end


def _split_generated(
    source: str, filename: str
) -> tuple[list[ast.Import | ast.ImportFrom], list[ast.stmt]]:
    tree = parse(source, filename)
    imports: list[ast.Import | ast.ImportFrom] = []
    body: list[ast.stmt] = []
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            imports.append(node)
        elif index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the generated module's docstring: the existing module has its own
        else:
            body.append(node)
    return imports, body


def merge_module(existing: str, generated: str, filename: str) -> str:
    """Add ``generated``'s imports and top-level definitions to ``existing``.

    An import or definition the module already has, identical, is not repeated;
    a name the module already binds to something else is a clash. Imports go
    after the module's own imports (the project's import sorter orders them);
    definitions go at the end.
    """
    tree = parse(existing, filename)
    bound: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name, line in _import_bindings(node):
                bound[name] = line
        for name in _defined_names(node):
            bound[name] = ast.dump(node)
    imports, body = _split_generated(generated, filename)
    new_imports: list[str] = []
    clashes: list[str] = []
    for node in imports:
        for name, line in _import_bindings(node):
            if name not in bound:
                bound[name] = line
                new_imports.append(line)
            elif bound[name] != line:
                clashes.append(name)
    new_definitions: list[str] = []
    for node in body:
        names = _defined_names(node)
        dumped = ast.dump(node)
        if names and all(bound.get(name) == dumped for name in names):
            continue
        clashes.extend(name for name in names if name in bound)
        for name in names:
            bound[name] = dumped
        new_definitions.append(_segment_with_decorators(generated, node))
    if clashes:
        raise ScaffoldError(f"{filename} already defines {', '.join(sorted(set(clashes)))}.")
    lines = existing.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if new_imports:
        at = _leading_imports_end(tree) or 0
        block = [f"{line}\n" for line in new_imports]
        lines[at:at] = block if at else [*block, "\n"]
    result = "".join(lines).rstrip("\n") + "\n"
    for definition in new_definitions:
        result += f"\n\n{definition}\n"
    return result


def _segment_with_decorators(source: str, node: ast.stmt) -> str:
    decorators = getattr(node, "decorator_list", [])
    first_line = min([node.lineno, *(decorator.lineno for decorator in decorators)])
    lines = source.splitlines()
    return "\n".join(lines[first_line - 1 : node.end_lineno])
