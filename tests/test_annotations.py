"""load_annotations: both JSON dialects on the real files, class numbering, repairs and mistakes."""
import json
from pathlib import Path

import pytest

from dcltal.data.annotations import load_annotations
from dcltal.errors import UserError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
THUMOS = DATA / "thumos14" / "actionformer" / "thumos14.json"
ANET = DATA / "activitynet13" / "activity_net.v1-3.derived.json"
needs_shared = pytest.mark.skipif(not ANET.exists(), reason="../shared/data not present")


def _counts(ann, subset):
    videos = ann.in_subset(subset)
    return len(videos), sum(len(v.labels) for v in videos)


@needs_shared
def test_actionformer_thumos14_counts_and_label_ids():
    ann = load_annotations(THUMOS)
    assert _counts(ann, "Validation") == (200, 3007)
    assert _counts(ann, "Test") == (212, 3358)
    raw = json.loads(THUMOS.read_text())["database"]
    for vid in ("video_test_0000004", "video_validation_0000051"):
        a = raw[vid]["annotations"]
        assert [ann.classes[i] for i in ann.videos[vid].labels] == [x["label"] for x in a]
        assert ann.videos[vid].labels.tolist() == [x["label_id"] for x in a]
        assert ann.videos[vid].fps == raw[vid]["fps"]


@needs_shared
def test_activitynet_official_dialect_counts_and_repairs(capsys):
    ann = load_annotations(ANET)
    assert _counts(ann, "training") == (9649, 14859)
    assert _counts(ann, "validation") == (4728, 7293)
    assert len(ann.classes) == 200 and ann.classes == sorted(ann.classes)  # no label_id: sorted names
    zero = sum(int((v.segments[:, 1] == v.segments[:, 0]).sum()) for v in ann.videos.values())
    assert zero == 12
    err = capsys.readouterr().err
    assert "zero-length ground-truth segments (kept): 12" in err
    late = [v for v in ann.videos.values() if len(v.labels) and v.duration is not None]
    assert all(v.segments.max() <= v.duration for v in late)
    assert ann.videos["H-yBxySDyTw"].fps is None


@needs_shared
def test_without_clipping_segments_stay_as_written():
    raw = json.loads(ANET.read_text())["database"]
    ann = load_annotations(ANET, clip=False)
    for vid in ("cp52LdlmlUk", "H-yBxySDyTw"):
        assert ann.videos[vid].segments.tolist() == [a["segment"] for a in raw[vid]["annotations"]]


def _write(tmp_path, db, name="a.json"):
    p = tmp_path / name
    p.write_text(json.dumps({"database": db}))
    return p


def test_classes_file_and_ambiguous(tmp_path):
    p = _write(tmp_path, {"x": {"subset": "T", "duration": 10, "annotations": [{"label": "b", "segment": [1, 2]}],
                                "ambiguous": [[3, 4], [6, 5]]}})
    (tmp_path / "classes.txt").write_text("b\na\n")
    ann = load_annotations(p, tmp_path / "classes.txt")
    assert ann.classes == ["b", "a"] and ann.videos["x"].labels.tolist() == [0]
    assert ann.videos["x"].ambiguous.tolist() == [[3, 4], [5, 6]]
    assert load_annotations(p).classes == ["b"]


def test_repairs_are_counted(tmp_path, capsys):
    p = _write(tmp_path, {"x": {"subset": "T", "duration": 10, "annotations": [
        {"label": "a", "segment": [8, 12]}, {"label": "a", "segment": [5, 3]}, {"label": "a", "segment": [4, 4]},
        {"label": "a", "segment": [9, 11]}]}})
    v = load_annotations(p).videos["x"]
    assert v.segments.tolist() == [[8, 10], [3, 5], [4, 4], [9, 10]]
    err = capsys.readouterr().err
    assert "ending after the video (clipped to its duration): 2" in err
    assert "reversed ground-truth segments (swapped): 1" in err
    assert "zero-length ground-truth segments (kept): 1" in err


@pytest.mark.parametrize("db, words", [
    ("no database", "no 'database'"),
    ({"x": {"annotations": []}}, "'subset'"),
    ({"x": {"subset": "T", "annotations": [{"label": "a", "segment": [1]}]}}, "not two finite numbers"),
    ({"x": {"subset": "T", "annotations": [{"label": "a", "segment": ["a", 2]}]}}, "not two finite numbers"),
    ({"x": {"subset": "T", "annotations": [{"segment": [1, 2]}]}}, "lacks the key 'label'"),
    ({"x": {"subset": "T", "duration": "long", "annotations": []}}, "'duration' must be a number"),
    ({"x": {"subset": "T", "annotations": [{"label": "a", "segment": [1, 2], "label_id": 0},
                                           {"label": "b", "segment": [1, 2], "label_id": 0}]}}, "share a label_id"),
])
def test_mistakes_name_the_file(tmp_path, db, words):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"database": db} if isinstance(db, dict) else {"x": 1}))
    with pytest.raises(UserError, match=words) as e:
        load_annotations(p)
    assert str(p) in str(e.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_annotations(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        load_annotations(tmp_path / "bad.json")


def test_unknown_subset_lists_the_present_ones(tmp_path):
    ann = load_annotations(_write(tmp_path, {"x": {"subset": "Test", "annotations": []}}))
    with pytest.raises(UserError, match=r"\['Test'\]"):
        ann.in_subset("test")


def test_label_missing_from_the_classes_file(tmp_path):
    p = _write(tmp_path, {"x": {"subset": "T", "annotations": [{"label": "c", "segment": [1, 2]}]}})
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(UserError, match="'c' is not in the classes file"):
        load_annotations(p, tmp_path / "classes.txt")


def test_label_id_wins_and_a_classes_file_must_agree_with_it(tmp_path):
    p = _write(tmp_path, {"x": {"subset": "T", "annotations": [{"label": "b", "segment": [1, 2], "label_id": 2},
                                                               {"label": "a", "segment": [1, 2], "label_id": 0}]}})
    (tmp_path / "good.txt").write_text("a\nunseen\nb\n")
    ann = load_annotations(p, tmp_path / "good.txt")
    assert ann.classes == ["a", "unseen", "b"] and ann.videos["x"].labels.tolist() == [2, 0]
    (tmp_path / "bad.txt").write_text("a\nb\nunseen\n")
    with pytest.raises(UserError, match="disagrees with the label_id"):
        load_annotations(p, tmp_path / "bad.txt")


def test_label_ids_with_a_gap_warn_and_index_the_classes_present_in_id_order(tmp_path, capsys):
    # a small subset may lack a class (id 1 here) and no classes file names it
    p = _write(tmp_path, {"x": {"subset": "T", "annotations": [{"label": "b", "segment": [1, 2], "label_id": 2},
                                                               {"label": "a", "segment": [1, 2], "label_id": 0}]}})
    ann = load_annotations(p)
    assert ann.classes == ["a", "b"] and ann.videos["x"].labels.tolist() == [1, 0]
    err = capsys.readouterr().err
    assert "label_ids without a class" in err and "1" in err
