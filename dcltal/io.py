"""Reading user files with clear errors, and atomic writes (temp file in the same folder, then rename)."""
from __future__ import annotations

import errno
import glob
import json
import os
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

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


def read_video_list(path: str | os.PathLike, what: str = "video list") -> set[str]:
    """Video ids from a file whose first word a line is a video id (``data.avoid_videos``, SSN's
    test_avoid_videos.txt); read as :func:`read_text` reads."""
    return {line.split()[0] for line in read_text(path, what).splitlines() if line.strip()}


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


def check_output(out: str | os.PathLike, option: str, inputs: Mapping[str, Any]) -> None:
    """A UserError where writing ``out`` (the command's ``option``) would replace one of its inputs:
    the same file, also through links, or a path inside a folder it reads (a feature or proposal
    folder: every file there is read as one). ``inputs``: name -> a path, a mapping of paths (one a
    stream), or None; checked before any work, so nothing is read from a half-written input."""
    target = os.path.realpath(out)
    for what, given in inputs.items():
        for path in given.values() if isinstance(given, Mapping) else [given]:
            if path is None:
                continue
            real = os.path.realpath(path)
            if target == real:
                raise UserError(f"{option} {out} would overwrite {what} ({path}), an input of this command; "
                                "name another path")
            if os.path.isdir(real) and target.startswith(real.rstrip(os.sep) + os.sep):
                raise UserError(f"{option} {out} lies inside {what} ({path}), a folder this command reads; "
                                "name a path outside it")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    A run killed mid-write leaves the previous file intact, never a truncated one; its temporary
    file is removed by the next write of the same path. An OSError without a file name (a full
    disk: ENOSPC, EFBIG) is raised again naming ``path``, so the command line can say which.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(target)
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


def _temp_beside(target: Path) -> tuple[int, str]:
    """(fd, path) of a new temporary file beside ``target``, named by this host and process, after
    removing those that killed processes of this host left for the same target."""
    prefix = f".{target.name}.{socket.gethostname()}-"
    _remove_stale(target.parent, prefix)
    return tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=".tmp", dir=target.parent)


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


@contextmanager
def held_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` while the block runs: it names this process (pid and host) and is
    created whole or not at all (a hard link of a written file, refused where the lock exists), and
    removed when the block ends, on an error too. Held by a live process: a UserError naming it and
    ``what`` is in use; left by a dead process of this host (a killed run): taken over with a warning.
    """
    lock = Path(path)
    mine = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(2):
        if _claim(lock, mine):
            break
        holder = _holder(lock)
        if holder is None:  # released between the two looks
            continue
        pid, host = holder
        if pid < 0:
            raise UserError(f"{lock} holds {host}, not a lock dcltal wrote; remove it if nothing uses {what}")
        if host != socket.gethostname() or _alive(pid):
            raise UserError(f"{what} is in use: process {pid} on {host} holds {lock}; wait for it to end, "
                            f"or remove {lock} if that process is gone")
        print(f"warning: {lock}: left by process {pid} of this host, which is gone (killed?); taken over",
              file=sys.stderr)
        lock.unlink(missing_ok=True)
    else:
        raise UserError(f"{what} is in use: {lock} was taken by another process while this one started; try again")
    try:
        yield
    finally:
        if lock.is_file() and lock.read_text() == mine:
            lock.unlink()


def _claim(lock: Path, text: str) -> bool:
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(lock)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.link(tmp, lock)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _holder(lock: Path) -> tuple[int, str] | None:
    """(pid, host) that a lock file names; None where it is gone; (-1, its text) where unreadable."""
    try:
        text = lock.read_text(errors="replace")
    except FileNotFoundError:
        return None
    parts = text.split()
    if len(parts) == 2 and parts[0].isdigit():
        return int(parts[0]), parts[1]
    return -1, repr(text[:40])


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
