"""THUMOS14 submission text (``video start end ucf101_class_id score`` a line) and the files it needs.

The official kit reads detections in this layout; class ids are UCF101's, taken from a file the
user names: a CSV with ``class_name`` and ``ucf101_id`` columns (``thumos14_classes.csv``) or
lines ``id name`` (UCF101's ``classInd.txt``, THUMOS14's ``detclasslist.txt``).
"""
from __future__ import annotations

import csv
import os

from dcltal.errors import UserError
from dcltal.io import existing_path, read_text, write_text


def read_class_ids(path: str | os.PathLike) -> dict[str, int]:
    """Class name -> UCF101 id from a ``class_name,ucf101_id`` CSV or ``id name`` lines."""
    p = existing_path(path, "class-id file")
    lines = [line for line in read_text(p, "class-id file").splitlines() if line.strip()]
    if lines and "," in lines[0]:
        rows = list(csv.DictReader(lines))
        if not rows or not {"class_name", "ucf101_id"} <= set(rows[0]):
            raise UserError(f"class-id file {p}: a CSV needs the columns class_name and ucf101_id")
        pairs = [(r["ucf101_id"], r["class_name"]) for r in rows]
    else:
        pairs = [tuple(line.split(None, 1)) for line in lines]
    ids = {}
    for n, pair in enumerate(pairs, 1):
        try:
            ids[pair[1].strip()] = int(pair[0])
        except (ValueError, IndexError):
            raise UserError(f"class-id file {p}: entry {n} {pair!r} is not 'id name'") from None
    return ids


def write_submission(path: str | os.PathLike, results: dict, class_ids: dict[str, int],
                     avoid: set[str] = frozenset()) -> int:
    """Write every detection of ``results`` (but the avoided videos) in the THUMOS14 layout; returns the count."""
    lines = []
    for vid, dets in results["results"].items():
        if vid in avoid:
            continue
        for d in dets:
            label = d["label"]
            if label not in class_ids:
                raise UserError(f"class {label!r} has no id in the class-id file; add a line 'id {label}'")
            start, end = d["segment"]
            lines.append(f"{vid} {float(start)!r} {float(end)!r} {class_ids[label]} {float(d['score'])!r}\n")
    write_text(path, "".join(lines))
    return len(lines)
