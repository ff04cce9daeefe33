"""Reading user files with clear errors, and atomic writes (temp file in the same folder, then rename)."""
from __future__ import annotations

import errno
import glob
import json
import os
import socket
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


def check_video_id(vid: str, source: str | os.PathLike) -> str:
    """``vid``, if it cannot name a file outside the folder it is joined to (no absolute path, no
    ``..`` part, no NUL); else a UserError naming ``source``."""
    parts = vid.replace("\\", "/").split("/")
    if not vid or vid.startswith(("/", "\\")) or ".." in parts or "\0" in vid or vid[1:2] == ":":
        raise UserError(f"{source}: video id {vid!r} is a path (absolute, or with '..'); "
                        "video ids name files inside data.features, give the bare id")
    return vid


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark dropped); a UserError naming ``what``,
    the file and the byte offset where it is not UTF-8, or that it is missing or a directory."""
    p = existing_path(path, what)
    try:
        raw = p.read_bytes()
    except IsADirectoryError:
        raise UserError(f"{what} {p} is a directory; expected a file") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {p} is not UTF-8 text: byte {e.start} (0x{raw[e.start]:02x}); "
                        "save it as UTF-8") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _DuplicateKey(twice)
    return obj


class _DuplicateKey(Exception):
    pass


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """The JSON of ``path``; a UserError for text that is not UTF-8, not JSON, or an object that
    names a key twice (json keeps the last silently: a video listed twice would lose its first entry)."""
    text = read_text(path, what)
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {path} is not valid JSON: line {e.lineno} column {e.colno}: {e.msg}") from None
    except _DuplicateKey as e:
        raise UserError(f"{what} {path} names the key {e.args[0]!r} twice in one object; keep one") from None


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    A run killed mid-write leaves the previous file intact, never a truncated one; its temporary
    file is removed by the next write of the same path. An OSError without a file name (a full
    disk: ENOSPC, EFBIG) is raised again naming ``path``, so the command line can say which.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.{socket.gethostname()}-"
    _remove_stale(target.parent, prefix)
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except OSError as e:
        if e.filename is None and e.errno is not None:  # a system error; OSError("message") passes as it is
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(target)) from e
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remove_stale(folder: Path, prefix: str) -> None:
    """Remove the temporary files of earlier writes on this host whose process is gone (killed)."""
    for f in folder.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = f.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                f.unlink()
            except FileNotFoundError:  # another process cleaned it first
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
