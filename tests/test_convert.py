"""`dcltal convert thumos14`: the official per-class txt files to the JSON dialect (CONTRACT §3)."""
import json
from pathlib import Path

import pytest

from dcltal.cli import main
from dcltal.data.annotations import load_annotations
from dcltal.data.thumos14 import read_durations

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "thumos14"
OFFICIAL = DATA / "official_annotations"
needs_shared = pytest.mark.skipif(not OFFICIAL.exists(), reason="../shared/data not present")


def _convert(tmp_path, *args):
    out = tmp_path / "out.json"
    assert main(["convert", "thumos14", *map(str, args), "--out", str(out)]) == 0
    return out, json.loads(out.read_text())["database"]


@needs_shared
def test_official_test_set(tmp_path):
    out, db = _convert(tmp_path, OFFICIAL / "annotations_test", "--durations", DATA / "ssn" / "test_durations.txt")
    assert len(db) == 213
    assert sum(len(v["annotations"]) for v in db.values()) == 3358
    assert sum(len(v["ambiguous"]) for v in db.values()) == 99
    assert {v["subset"] for v in db.values()} == {"Test"}
    assert db["video_test_0001292"]["annotations"] == [] and len(db["video_test_0001292"]["ambiguous"]) == 3
    durations = read_durations(DATA / "ssn" / "test_durations.txt")
    assert all(v["duration"] == durations[k] for k, v in db.items())
    # the same instances as ActionFormer's file (same label ids), video by video
    af = json.loads((DATA / "actionformer" / "thumos14.json").read_text())["database"]
    for vid in ("video_test_0000004", "video_test_0000039"):
        key = lambda a: (a["label_id"], a["segment"])
        assert sorted(map(key, db[vid]["annotations"])) == sorted(map(key, af[vid]["annotations"]))
    ann = load_annotations(out)
    assert ann.classes == sorted(ann.classes) and len(ann.classes) == 20


@needs_shared
def test_official_validation_set_and_subset_override(tmp_path):
    _, db = _convert(tmp_path, OFFICIAL / "annotations_val")
    assert len(db) == 200
    assert sum(len(v["annotations"]) for v in db.values()) == 3007
    assert sum(len(v["ambiguous"]) for v in db.values()) == 89
    assert {v["subset"] for v in db.values()} == {"Validation"}
    assert all("duration" not in v for v in db.values())
    _, db = _convert(tmp_path, OFFICIAL / "annotations_val", "--subset", "train")
    assert {v["subset"] for v in db.values()} == {"train"}


def test_kit_order_inside_a_class_and_one_line_durations(tmp_path):
    d = tmp_path / "ann"
    d.mkdir()
    (d / "Jump_test.txt").write_text("v1  5.0 6.0\nv1  1.0 2.0\nv2.mp4  0.5 0.7\n")
    (d / "Ambiguous_test.txt").write_text("v1  3.0 4.0\n")
    (d / "readme.txt").write_text("not an annotation file\n")
    (tmp_path / "dur.txt").write_text("v1 10.0 300\nv2.mp4 20.5 615\n")
    _, db = _convert(tmp_path, d, "--durations", tmp_path / "dur.txt")
    assert [a["segment"] for a in db["v1"]["annotations"]] == [[5.0, 6.0], [1.0, 2.0]]
    assert db["v1"]["ambiguous"] == [[3.0, 4.0]] and db["v2"]["duration"] == 20.5


@pytest.mark.parametrize("files, words", [
    ({"Jump_test.txt": "v1 1.0\n"}, "line 1: expected 'video_name start_s end_s'"),
    ({"readme.txt": "x"}, "no <Class>_val.txt"),
])
def test_mistakes_exit_2_with_one_line(tmp_path, capsys, files, words):
    d = tmp_path / "ann"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    assert main(["convert", "thumos14", str(d), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert not (tmp_path / "o.json").exists()


def test_durations_file_missing_a_video(tmp_path, capsys):
    d = tmp_path / "ann"
    d.mkdir()
    (d / "Jump_val.txt").write_text("v1 1.0 2.0\nv3 1.0 2.0\n")
    (tmp_path / "dur.txt").write_text("v1.mp4\n10.0\n")
    assert main(["convert", "thumos14", str(d), "--out", str(tmp_path / "o.json"), "--durations",
                 str(tmp_path / "dur.txt")]) == 2
    assert "lacks 1 videos" in capsys.readouterr().err
