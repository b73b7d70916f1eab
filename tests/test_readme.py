"""The README's Python examples run as written, in order, in one namespace (with 20 training steps, not 2000)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FAST = {"steps=2000": "steps=20", "warmup=100": "warmup=5"}  # what the examples train for -> what the test trains for


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S).group(1)
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["make", "demo"], ["make", "test"]]


def test_readme_examples_name_only_what_they_define():
    """Every name an example uses comes from an import, an assignment or an earlier example (no `tokens` out of
    thin air); checked without running anything."""
    import ast
    import builtins

    defined = set(dir(builtins))
    for i, block in enumerate(_python_blocks()):
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.arguments):
                defined |= {a.arg for a in node.args + node.kwonlyargs}
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert used <= defined, f"README python block {i + 1} uses undefined {sorted(used - defined)}"


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = "\n".join(_python_blocks())
    for slow, fast in FAST.items():
        assert slow in code, f"the README no longer says {slow!r}: update FAST"
        code = code.replace(slow, fast)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["history"].step[-1] == 20
    assert (tmp_path / "runs" / "char").is_dir()  # the checkpoint the example promises
    assert "blocks.0.attn.hook_pattern" in namespace["cache"]
    sample = printed.getvalue().split("ROMEO:", 1)[1]
    assert len(sample) >= 150, printed.getvalue()  # 200 characters, none of them a special token
    # 20 steps leave every special token a fair chance; generation with tokenizer= never samples them
    assert not [t for t in namespace["char"].special_tokens.values() if t in sample], sample
    view = namespace["head_view"](namespace["cache"], namespace["tokens"])
    assert len(view.payload.query_tokens) == len(namespace["text"])
