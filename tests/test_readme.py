"""The README's Python examples run as written (with fewer training steps)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S).group(1)
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["make", "demo"], ["make", "test"]]


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = "\n".join(_python_blocks())
    assert "steps=2000" in code
    namespace: dict = {}
    exec(compile(code.replace("steps=2000", "steps=20"), "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["history"].step[-1] == 20
    assert (tmp_path / "runs" / "char").is_dir()  # the checkpoint the example promises
    assert "blocks.0.attn.hook_pattern" in namespace["cache"]
