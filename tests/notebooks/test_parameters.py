"""The `parameters` cell as a typed signature: parsing with ast, coercion of CLI strings, one-line errors."""

from __future__ import annotations

import math

import nbformat
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.errors import InvalidInputError, MissingSourceError, UnknownNameError
from labkit.notebooks.parameters import Parameter, coerce, read_parameters, validate_parameters

SIGNATURE = """from typing import Literal
vocab_size: int = 2000  # how many tokens the tokenizer may learn
lr: float = 3e-4  # learning rate
corpus: str = "shakespeare"  # which corpus to load
lowercase: bool = False
kind: Literal["char", "bpe", "wordpiece"] = "bpe"  # tokenizer family
sizes: list[int] = [1, 2, 3]  # several sizes
"""


def _nb(*sources: str, tagged: tuple[int, ...] = (0,)) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for i, src in enumerate(sources):
        cell = nbformat.v4.new_code_cell(src)
        if i in tagged:
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    return nb


def test_reads_every_declared_parameter_with_type_default_help_and_choices(tmp_path):
    path = tmp_path / "sig.ipynb"
    nbformat.write(_nb("import os", SIGNATURE, tagged=(1,)), path)
    params = {p.name: p for p in read_parameters(path)}
    assert list(params) == ["vocab_size", "lr", "corpus", "lowercase", "kind", "sizes"]
    assert params["vocab_size"] == Parameter("vocab_size", "int", 2000, "how many tokens the tokenizer may learn")
    assert params["lr"].default == pytest.approx(3e-4) and params["lr"].type == "float"
    assert params["lowercase"].help == "" and params["lowercase"].default is False
    assert params["kind"].choices == ("char", "bpe", "wordpiece") and params["kind"].kind == "literal"
    assert params["sizes"].type == "list[int]" and params["sizes"].default == [1, 2, 3]
    # the same result from an already loaded notebook
    assert read_parameters(nbformat.read(path, as_version=4)) == list(params.values())


def test_signature_line_round_trips_through_the_parser():
    params = read_parameters(_nb(SIGNATURE))
    again = read_parameters(_nb("\n".join(p.signature() for p in params)))
    assert again == params


def test_the_cell_is_parsed_not_executed():
    # executing this would raise; parsing only reads the declaration
    params = read_parameters(_nb('n: int = 1  # raise SystemExit("no")'))
    assert params[0].default == 1


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1", "is not `name: type = value`"),
        ("print('hi')", "is not `name: type = value`"),
        ("n: int", "is not `name: type = value`"),
        ("n: dict = {}", "unsupported type 'dict'"),
        ("n: int = len('ab')", "not a literal"),
        ("n: int = 'abc'", "parameter 'n' expects int, got 'abc'"),
        ("n: int = = 3", "is not valid Python"),
    ],
)
def test_bad_parameter_lines_raise_one_clear_line(source, message):
    with pytest.raises(InvalidInputError) as info:
        read_parameters(_nb(source))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_no_or_several_parameters_cells_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="no code cell tagged 'parameters'"):
        read_parameters(_nb("n: int = 1", tagged=()))
    with pytest.raises(InvalidInputError, match="2 cells tagged 'parameters'"):
        read_parameters(_nb("n: int = 1", "m: int = 2", tagged=(0, 1)))
    with pytest.raises(MissingSourceError, match="does not exist"):
        read_parameters(tmp_path / "missing.ipynb")
    (tmp_path / "broken.ipynb").write_text("{not json")
    with pytest.raises(InvalidInputError, match="not a readable notebook"):
        read_parameters(tmp_path / "broken.ipynb")


def test_cli_strings_are_converted_to_the_declared_types():
    p = {q.name: q for q in read_parameters(_nb(SIGNATURE))}
    assert coerce(p["lr"], "1e-3") == pytest.approx(0.001)
    assert coerce(p["lr"], "2") == 2.0 and isinstance(coerce(p["lr"], 2), float)
    assert coerce(p["vocab_size"], " 512 ") == 512
    for text, value in [("true", True), ("Yes", True), ("1", True), ("false", False), ("no", False), ("0", False)]:
        assert coerce(p["lowercase"], text) is value
    assert coerce(p["kind"], "char") == "char"
    assert coerce(p["sizes"], "4,5") == [4, 5] and coerce(p["sizes"], "[6, 7]") == [6, 7]
    assert coerce(p["corpus"], "1e-3") == "1e-3"  # a str parameter keeps the text as typed


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("vocab_size", "abc", "parameter 'vocab_size' expects int, got 'abc'"),
        ("vocab_size", "1.5", "parameter 'vocab_size' expects int, got '1.5'"),
        ("vocab_size", True, "parameter 'vocab_size' expects int, got True"),
        ("lr", "fast", "parameter 'lr' expects float, got 'fast'"),
        ("lowercase", "maybe", "parameter 'lowercase' expects bool"),
        ("kind", "unigram", "must be one of 'char', 'bpe', 'wordpiece'; got 'unigram'"),
        ("sizes", "1,x", "parameter 'sizes' expects list[int]"),
    ],
)
def test_wrong_values_name_the_parameter_and_the_expected_type(name, raw, message):
    p = {q.name: q for q in read_parameters(_nb(SIGNATURE))}
    with pytest.raises(InvalidInputError) as info:
        coerce(p[name], raw)
    assert message in str(info.value)


def test_unknown_parameter_lists_close_matches_and_declared_names():
    declared = read_parameters(_nb(SIGNATURE))
    with pytest.raises(UnknownNameError) as info:
        validate_parameters(declared, {"vocab_sise": "10"})
    text = str(info.value)
    assert "unknown parameter 'vocab_sise'" in text and "did you mean 'vocab_size'" in text and "corpus" in text
    assert validate_parameters(declared, {"vocab_size": "10", "kind": "char"}) == {"vocab_size": 10, "kind": "char"}


INT = Parameter("n", "int", 0)
FLOAT = Parameter("x", "float", 0.0)
BOOL = Parameter("b", "bool", False)
LIST = Parameter("xs", "list[int]", [])


@given(st.integers())
def test_int_round_trips_through_its_string(value):
    assert coerce(INT, str(value)) == value


@given(st.floats(allow_nan=False))
def test_float_round_trips_through_repr(value):
    assert coerce(FLOAT, repr(value)) == value


@given(st.floats(allow_nan=True, allow_infinity=True).filter(math.isnan))
def test_nan_is_a_float(value):
    assert math.isnan(coerce(FLOAT, repr(value)))


@given(st.booleans())
def test_bool_round_trips_through_its_string(value):
    assert coerce(BOOL, str(value)) is value


@given(st.lists(st.integers(), max_size=8))
def test_int_list_round_trips_through_commas_and_brackets(values):
    assert coerce(LIST, ",".join(map(str, values))) == values
    assert coerce(LIST, str(values)) == values


@given(st.sampled_from([("a", "b"), (1, 2, 3), ("x",)]).flatmap(lambda cs: st.tuples(st.just(cs), st.sampled_from(cs))))
def test_literal_accepts_each_choice_written_as_text(case):
    choices, choice = case
    param = Parameter("c", "Literal", choices[0], choices=choices)
    assert coerce(param, str(choice)) == choice


def test_parameter_file_gives_a_mapping_or_one_clear_error(tmp_path):
    from labkit.notebooks.parameters import load_parameter_file

    good = tmp_path / "p.yaml"
    good.write_text("vocab_size: 4000\nkind: char\n")
    declared = read_parameters(_nb(SIGNATURE))
    assert validate_parameters(declared, load_parameter_file(good)) == {"vocab_size": 4000, "kind": "char"}
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InvalidInputError, match="must hold a mapping of name: value, got list"):
        load_parameter_file(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(InvalidInputError, match="is not valid YAML at line 2"):
        load_parameter_file(tmp_path / "bad.yaml")
