"""Small helpers the tests share (fixtures live in conftest.py)."""

from pathlib import Path


def write_lines(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return str(path)
