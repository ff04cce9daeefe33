"""External video-level scores: UntrimmedNet's uNet_test.npy layout and the JSON layout."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dcltal.data.video_scores import THUMOS14_UCF101_IDS, load_video_scores, read_class_map
from dcltal.errors import UserError

CLASSES_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "thumos14" / "classes"
CLASSES_CSV = CLASSES_DIR / "thumos14_classes.csv"
CLASS_IND = CLASSES_DIR / "ucf101_classInd.txt"

needs_shared = pytest.mark.skipif(not CLASSES_CSV.exists(), reason="../shared/data not present")


def _csv_rows():
    with open(CLASSES_CSV) as f:
        return list(csv.DictReader(f))


def _coded_unet(rows=1574, cols=101):
    """[rows, cols] with value row * 1000 + column, so every looked-up value says where it came from."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return (r * 1000 + c).astype(np.float32)


@needs_shared
def test_builtin_thumos14_ids_equal_the_shared_classes_csv():
    rows = _csv_rows()
    assert {row["class_name"]: int(row["ucf101_id"]) for row in rows} == THUMOS14_UCF101_IDS
    assert all(int(row["unet_column"]) == int(row["ucf101_id"]) - 1 for row in rows)


@needs_shared
@pytest.mark.parametrize("class_map", [None, "csv", "classInd", "dict"])
def test_unet_rows_are_video_numbers_and_columns_ucf101_ids(tmp_path, class_map):
    rows = _csv_rows()
    classes = [row["class_name"] for row in sorted(rows, key=lambda r: int(r["class_idx"]))]
    np.save(tmp_path / "uNet_test.npy", _coded_unet())
    cmap = {None: None, "csv": CLASSES_CSV, "classInd": CLASS_IND,
            "dict": {row["class_name"]: int(row["ucf101_id"]) for row in rows}}[class_map]
    videos = ["video_test_0000004", "video_test_0001574", "video_test_0000001"]
    out = load_video_scores(tmp_path / "uNet_test.npy", videos, classes, class_map=cmap)
    assert list(out) == videos
    for vid in videos:
        number = int(vid.rsplit("_", 1)[1])
        # reference from the CSV's own unet_column, row = number - 1
        expected = [(number - 1) * 1000 + int(row["unet_column"])
                    for row in sorted(rows, key=lambda r: int(r["class_idx"]))]
        np.testing.assert_array_equal(out[vid], expected)
        assert out[vid].dtype == np.float64
    assert out["video_test_0000004"][0] == 3 * 1000 + 6  # BaseballPitch is UCF101 class 7


@needs_shared
def test_read_class_map_both_layouts_agree_on_thumos_classes():
    from_csv = read_class_map(CLASSES_CSV)
    from_ind = read_class_map(CLASS_IND)
    assert len(from_ind) == 101
    assert all(from_ind[name] == uid for name, uid in from_csv.items())


def test_class_order_follows_the_classes_argument(tmp_path):
    np.save(tmp_path / "u.npy", _coded_unet(rows=10))
    out = load_video_scores(tmp_path / "u.npy", ["video_test_0000002"], ["Shotput", "BaseballPitch"])
    np.testing.assert_array_equal(out["video_test_0000002"], [1000 + 78, 1000 + 6])


def test_unet_mistakes(tmp_path):
    np.save(tmp_path / "u.npy", _coded_unet(rows=10))
    with pytest.raises(UserError, match="class Walking has no UCF101 id"):
        load_video_scores(tmp_path / "u.npy", ["video_test_0000001"], ["Walking"])
    with pytest.raises(UserError, match="row 11 of .*10 rows"):
        load_video_scores(tmp_path / "u.npy", ["video_test_0000012"], ["Diving"])
    with pytest.raises(UserError, match="has no number at the end"):
        load_video_scores(tmp_path / "u.npy", ["v_abc"], ["Diving"])
    np.save(tmp_path / "narrow.npy", _coded_unet(rows=10, cols=50))
    with pytest.raises(UserError, match="has 50 columns"):
        load_video_scores(tmp_path / "narrow.npy", ["video_test_0000001"], ["VolleyballSpiking"])
    bad = _coded_unet(rows=10)
    bad[3, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(UserError, match=r"nan\.npy holds NaN"):
        load_video_scores(tmp_path / "nan.npy", ["video_test_0000001"], ["Diving"])
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(UserError, match=r"junk\.npy is not a valid \.npy"):
        load_video_scores(tmp_path / "junk.npy", ["video_test_0000001"], ["Diving"])


def test_class_map_file_mistakes(tmp_path):
    (tmp_path / "map.csv").write_text("name,id\nDiving,26\n")
    with pytest.raises(UserError, match=r"map\.csv: line 1: .*class_name and ucf101_id"):
        read_class_map(tmp_path / "map.csv")
    (tmp_path / "map2.csv").write_text("class_name,ucf101_id\nDiving,twenty\n")
    with pytest.raises(UserError, match=r"map2\.csv: line 2"):
        read_class_map(tmp_path / "map2.csv")
    (tmp_path / "ind.txt").write_text("1 ApplyEyeMakeup\nTwo Archery\n")
    with pytest.raises(UserError, match=r"ind\.txt: line 2"):
        read_class_map(tmp_path / "ind.txt")


def test_json_scores_in_class_order_missing_labels_zero(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"a": {"Run": 0.7, "Jump": 0.2}, "b": {"Swim": 1}}))
    out = load_video_scores(tmp_path / "s.json", ["a", "b"], ["Jump", "Run", "Swim"])
    np.testing.assert_array_equal(out["a"], [0.2, 0.7, 0.0])
    np.testing.assert_array_equal(out["b"], [0.0, 0.0, 1.0])


def test_json_video_without_scores_is_an_error(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"a": {"Run": 0.7}}))
    with pytest.raises(UserError, match=r"s\.json have no entry for video b"):
        load_video_scores(tmp_path / "s.json", ["a", "b"], ["Run"])


@pytest.mark.parametrize("obj, match", [
    ([1, 2], "expected a JSON object"),
    ({"a": [0.1]}, "video a: expected {label: score}"),
    ({"a": {"Fly": 0.1}}, "label 'Fly' is not a class"),
    ({"a": {"Run": "high"}}, "score of 'Run' must be a finite number"),
])
def test_json_mistakes(tmp_path, obj, match):
    (tmp_path / "s.json").write_text(json.dumps(obj))
    with pytest.raises(UserError, match=match):
        load_video_scores(tmp_path / "s.json", ["a"], ["Run"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="video scores not found"):
        load_video_scores(tmp_path / "absent.npy", ["a"], ["Run"])
    (tmp_path / "s.json").write_text("{\"a\": ")
    with pytest.raises(UserError, match="not valid JSON"):
        load_video_scores(tmp_path / "s.json", ["a"], ["Run"])
