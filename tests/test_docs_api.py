"""Every example of docs/api.md runs and prints what the page says it prints."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "api.md"
EXAMPLE = re.compile(r"```python\n(# python [^\n]+)\n(.*?)```\n\n```text\n(.*?)```", re.S)


def examples() -> list[object]:
    found = EXAMPLE.findall(PAGE.read_text())
    assert len(found) >= 5, "docs/api.md lost its examples"
    return [pytest.param(*example, id=example[0].split()[2]) for example in found]


@pytest.mark.parametrize(("command", "code", "output"), examples())
def test_api_page_example(command: str, code: str, output: str, tmp_path: Path) -> None:
    script, *args = shlex.split(command.removeprefix("# python "))
    (tmp_path / script).write_text(code)
    proc = subprocess.run(
        [sys.executable, script, *args],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=tmp_path,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == output
