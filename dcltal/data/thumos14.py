"""THUMOS14's official temporal annotations (one text file a class) to the ActivityNet-style JSON.

The release has ``<Class>_val.txt`` / ``<Class>_test.txt`` files with lines
``video_name start_s end_s`` and an ``Ambiguous_*.txt`` file of the parts that were hard to label;
the kit takes those out of the evaluation. Converted (CONTRACT §3):

- subset from the file names (``*_val.txt`` -> ``Validation``, ``*_test.txt`` -> ``Test``, as
  ActionFormer's file names them) unless one is given;
- ``Ambiguous`` segments to a per-video ``"ambiguous": [[s, e], ...]``, not into ``annotations``;
- ``label_id`` = index of the class in alphabetical order (ActionFormer's numbering);
- videos sorted by name, annotations by class then line order (the kit's order inside a class);
- ``duration`` from a durations file (SSN's layout: a line ``video.mp4``, then a line with the
  seconds; also ``video seconds ...`` on one line, as TURN's lists), else absent.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from dcltal.errors import UserError
from dcltal.io import existing_path, read_text

SUBSET_OF_SUFFIX = {"val": "Validation", "test": "Test"}
_NAME = re.compile(r"^(?P<label>.+)_(?P<suffix>val|test)\.txt$")


def _video_id(name: str) -> str:
    return name[:-4] if name.endswith(".mp4") else name


def read_durations(path: str | os.PathLike) -> dict[str, float]:
    """Video -> seconds from SSN's ``*_durations.txt`` (name line, seconds line) or ``name seconds`` lines."""
    p = Path(path)
    lines = [(n, line.split()) for n, line in enumerate(read_text(p, "durations file").splitlines(), 1) if line.strip()]
    out: dict[str, float] = {}
    k = 0
    while k < len(lines):
        n, words = lines[k]
        if len(words) >= 2:
            name, value, k = words[0], words[1], k + 1
        elif k + 1 < len(lines) and len(lines[k + 1][1]) == 1:
            name, value, k = words[0], lines[k + 1][1][0], k + 2
        else:
            raise UserError(f"durations file {p} line {n}: expected 'video.mp4' then a line with its seconds")
        try:
            out[_video_id(name)] = float(value)
        except ValueError:
            raise UserError(f"durations file {p} line {n}: {value!r} is not a number of seconds") from None
    return out


def read_official_dir(annotation_dir: str | os.PathLike, subset: str | None = None,
                      durations: dict[str, float] | None = None) -> dict:
    """The ActivityNet-style JSON object (``{"version", "database"}``) of an official annotation folder."""
    folder = existing_path(annotation_dir, "annotation directory")
    if not folder.is_dir():
        raise UserError(f"annotation directory {folder} is not a directory; give the folder of *_val.txt / *_test.txt")
    files = sorted((m.group("label"), m.group("suffix"), f) for f in folder.iterdir() if (m := _NAME.match(f.name)))
    if not any(label != "Ambiguous" for label, _, _ in files):
        raise UserError(f"annotation directory {folder} has no <Class>_val.txt or <Class>_test.txt files")
    classes = sorted({label for label, _, _ in files if label != "Ambiguous"})
    database: dict[str, dict] = {}
    for label, suffix, f in files:
        for n, vid, start, end in _read_class_file(f):
            entry = database.setdefault(vid, {"subset": subset or SUBSET_OF_SUFFIX[suffix], "annotations": [],
                                              "ambiguous": []})
            if label == "Ambiguous":
                entry["ambiguous"].append([start, end])
            else:
                entry["annotations"].append({"label": label, "segment": [start, end], "label_id": classes.index(label)})
    if durations is not None:
        missing = sorted(set(database) - set(durations))
        if missing:
            raise UserError(f"the durations file lacks {len(missing)} videos of {folder} (e.g. {missing[0]}); "
                            "give the durations file of this subset")
    out = {}
    for vid in sorted(database):
        entry = database[vid]
        if durations is not None:
            entry = {"subset": entry["subset"], "duration": durations[vid], **entry}
        out[vid] = entry
    return {"version": "THUMOS14 official annotations, converted by dcltal", "database": out}


def _read_class_file(path: Path) -> list[tuple[int, str, float, float]]:
    rows = []
    for n, line in enumerate(read_text(path, "annotation file").splitlines(), 1):
        words = line.split()
        if not words:
            continue
        try:
            if len(words) != 3:
                raise ValueError
            rows.append((n, _video_id(words[0]), float(words[1]), float(words[2])))
        except ValueError:
            raise UserError(f"{path} line {n}: expected 'video_name start_s end_s', got {line.strip()!r}") from None
    return rows
