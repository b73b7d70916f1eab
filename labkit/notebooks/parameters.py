"""A notebook's typed signature: the single cell tagged `parameters`.

Each line of that cell declares one parameter as `name: type = value  # help`,
with type `int`, `float`, `str`, `bool`, `Literal[...]` (a fixed set of
choices) or `list[int|float|str|bool]`. The cell is parsed with `ast`, never
executed, so reading a signature is instant and safe.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError, close_matches

PARAMETERS_TAG = "parameters"
_SCALARS = {"int": int, "float": float, "str": str, "bool": bool}
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its name, type (as written), default, help text and allowed choices."""

    name: str
    type: str  # the annotation as written, e.g. "int" or "Literal['bpe', 'char']"
    default: Any
    help: str = ""
    choices: tuple | None = None  # only for Literal[...]

    @property
    def kind(self) -> str:
        """The base kind: 'int', 'float', 'str', 'bool', 'literal' or 'list[<item>]'."""
        if self.choices is not None:
            return "literal"
        return self.type

    def signature(self) -> str:
        """Return the declaration line, `name: type = default  # help`."""
        line = f"{self.name}: {self.type} = {self.default!r}"
        return f"{line}  # {self.help}" if self.help else line

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly description (for `labkit params --json`)."""
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "help": self.help,
            "choices": list(self.choices) if self.choices is not None else None,
        }


def _load_notebook(path_or_nb: Any) -> Mapping[str, Any]:
    # plain json, not nbformat: nbformat's schema validation costs over a second to import,
    # and a bad parameter must be reported before that
    if isinstance(path_or_nb, (str, Path)):
        path = Path(path_or_nb)
        if not path.is_file():
            raise MissingSourceError(f"notebook {str(path)!r} does not exist; pass the path to an existing .ipynb file")
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"{str(path)!r} is not a readable notebook ({type(exc).__name__}); pass a valid .ipynb file"
            ) from None
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise InvalidInputError(f"{str(path)!r} is not a notebook (no 'cells' list); pass a valid .ipynb file")
        return nb
    return path_or_nb


def parameters_cell(path_or_nb: Any) -> tuple[int, Any]:
    """Notebook path or loaded notebook (dict/`NotebookNode`) in, (index, cell) of its single `parameters`-tagged cell out."""
    nb = _load_notebook(path_or_nb)
    found = [
        (i, c)
        for i, c in enumerate(nb["cells"])
        if c.get("cell_type") == "code" and PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])
    ]
    if not found:
        raise InvalidInputError(
            "the notebook has no code cell tagged 'parameters'; tag the cell that declares `name: type = value` lines"
        )
    if len(found) > 1:
        where = ", ".join(str(i + 1) for i, _ in found)
        raise InvalidInputError(
            f"the notebook has {len(found)} cells tagged 'parameters' (cells {where}); keep the tag on exactly one cell"
        )
    return found[0]


def _comments_by_line(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
    except tokenize.TokenError:
        pass  # ast.parse below reports the syntax error with a better message
    return comments


def _annotation(node: ast.expr, line: str) -> tuple[str, tuple | None]:
    """Return (type text, choices) for a supported annotation, or raise."""
    if isinstance(node, ast.Name) and node.id in _SCALARS:
        return node.id, None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id == "Literal":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            try:
                choices = tuple(ast.literal_eval(e) for e in elts)
            except ValueError:
                raise InvalidInputError(f"parameters line {line!r}: Literal[...] must list constant values") from None
            return ast.unparse(node), choices
        if node.value.id == "list" and isinstance(node.slice, ast.Name) and node.slice.id in _SCALARS:
            return f"list[{node.slice.id}]", None
    raise InvalidInputError(
        f"parameters line {line!r} has unsupported type {ast.unparse(node)!r}; use int, float, str, bool, Literal[...] or list[int|float|str|bool]"
    )


def read_parameters(path_or_nb: Any) -> list[Parameter]:
    """Notebook path or `NotebookNode` in, its declared parameters (in order) out.

    path_or_nb: a path to an .ipynb file or an already loaded notebook.
    """
    _, cell = parameters_cell(path_or_nb)
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        bad = lines[exc.lineno - 1].strip() if exc.lineno and exc.lineno <= len(lines) else source
        raise InvalidInputError(
            f"parameters line {bad!r} is not valid Python; write it as `name: type = value  # help`"
        ) from None
    comments = _comments_by_line(source)
    params: list[Parameter] = []
    for stmt in tree.body:
        text = "\n".join(lines[stmt.lineno - 1 : stmt.end_lineno]).strip()
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None):
            if isinstance(stmt, (ast.Import, ast.ImportFrom)) and all(
                a.name in ("Literal", "typing") for a in stmt.names
            ):
                continue  # `from typing import Literal` keeps the cell valid Python in Jupyter
            raise InvalidInputError(
                f"parameters line {text!r} is not `name: type = value`; declare one typed parameter per line"
            )
        type_text, choices = _annotation(stmt.annotation, text)
        try:
            default = ast.literal_eval(stmt.value)
        except ValueError:
            raise InvalidInputError(
                f"parameters line {text!r} has a default that is not a literal; use a constant such as 3, 'text' or True"
            ) from None
        param = Parameter(stmt.target.id, type_text, default, comments.get(stmt.lineno, ""), choices)
        _check_value(param, default)  # a default of the wrong type is a bug in the notebook: say so now
        params.append(param)
    return params


def _type_error(param: Parameter, raw: Any) -> InvalidInputError:
    return InvalidInputError(f"parameter {param.name!r} expects {param.type}, got {raw!r}")


def _coerce_scalar(param: Parameter, kind: str, raw: str) -> Any:
    text = raw.strip()
    if kind == "str":
        return raw
    if kind == "bool":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise InvalidInputError(f"parameter {param.name!r} expects bool (true/false/1/0/yes/no), got {raw!r}")
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        raise _type_error(param, raw) from None


def _check_value(param: Parameter, value: Any) -> Any:
    """Check an already-typed Python value against the declaration; return it (ints widened to float)."""
    if param.choices is not None:
        if value not in param.choices or type(value) is not type(next(c for c in param.choices if c == value)):
            allowed = ", ".join(repr(c) for c in param.choices)
            raise InvalidInputError(f"parameter {param.name!r} must be one of {allowed}; got {value!r}")
        return value
    if param.type.startswith("list["):
        if not isinstance(value, (list, tuple)):
            raise _type_error(param, value)
        item = Parameter(param.name, param.type[5:-1], None)
        return [_check_value(item, v) for v in value]
    expected = _SCALARS[param.type]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise _type_error(param, value)
    return value


def coerce(parameter: Parameter, raw: Any) -> Any:
    """A command-line string (or a Python value) in, the value converted to the declared type out.

    parameter: the declaration to convert for.
    raw: a string such as "1e-3", "yes", "1,2,3" or "[1, 2]"; non-strings are only type-checked.
    """
    if not isinstance(raw, str) or parameter.type == "str":
        return _check_value(parameter, raw)
    if parameter.choices is not None:
        for choice in parameter.choices:
            if str(choice) == raw.strip() or repr(choice) == raw.strip():
                return choice
        allowed = ", ".join(repr(c) for c in parameter.choices)
        raise InvalidInputError(f"parameter {parameter.name!r} must be one of {allowed}; got {raw!r}")
    if parameter.type.startswith("list["):
        item = parameter.type[5:-1]
        text = raw.strip()
        if text.startswith("["):
            try:
                items = json.loads(text) if item != "str" else ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise _type_error(parameter, raw) from None
            return _check_value(parameter, items)
        parts = [p for p in text.split(",")] if text else []
        return [_coerce_scalar(parameter, item, p) if item != "str" else p.strip() for p in parts]
    return _coerce_scalar(parameter, parameter.type, raw)


def validate_parameters(declared: list[Parameter], values: Mapping[str, Any]) -> dict[str, Any]:
    """Declared parameters and user values (strings or Python values) in, the coerced values out.

    Raises `UnknownNameError` for a name the notebook does not declare and
    `InvalidInputError` for a value of the wrong type or outside the choices.
    """
    by_name = {p.name: p for p in declared}
    out: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in by_name:
            hint = close_matches(name, by_name)
            known = ", ".join(by_name) or "none"
            raise UnknownNameError(
                f"unknown parameter {name!r}; {hint + ' ' if hint else ''}the notebook declares: {known}"
            )
        out[name] = coerce(by_name[name], raw)
    return out


def group_cli_values(pairs: Iterable[Sequence[str]]) -> dict[str, list[str]]:
    """The command line's `-p NAME VALUE` pairs in, name -> its values in the order given out.

    `labkit run` and `labkit sweep` read `-p` the same way: one value per `-p`, converted later to the declared
    type exactly as written ("1,2,3" is one `list[int]` value). A name given again adds a value, which a sweep
    runs over and a single run refuses.
    """
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    return values


def load_parameter_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON file holding a `name: value` mapping in, that mapping out (values still to be validated).

    path: e.g. `params.yaml` with lines such as `vocab_size: 4000`.
    """
    import yaml  # PyYAML comes with papermill

    file = Path(path)
    if not file.is_file():
        raise MissingSourceError(
            f"parameter file {str(file)!r} does not exist; pass a YAML or JSON file of name: value lines"
        )
    try:
        values = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise InvalidInputError(
            f"parameter file {str(file)!r} is not valid YAML{line}; write one `name: value` per line"
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise InvalidInputError(
            f"parameter file {str(file)!r} must hold a mapping of name: value, got {type(values).__name__}"
        )
    return values
