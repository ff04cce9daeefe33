"""Reading user files with clear errors, and atomic writes (temp file in the same folder, then rename)."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from dcltal.errors import UserError


def existing_path(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path, or a UserError naming ``what`` when it does not exist."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} not found: {p} (check the path)")
    return p


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    p = existing_path(path, what)
    try:
        with open(p, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {p} is not valid JSON: line {e.lineno} column {e.colno}: {e.msg}") from None
    except IsADirectoryError:
        raise UserError(f"{what} {p} is a directory; expected a JSON file") from None


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    A run killed mid-write leaves the previous file intact, never a truncated one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
