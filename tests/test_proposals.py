"""Proposal files: the three formats of CONTRACT §1, the writers, repairs and mistakes."""
from __future__ import annotations

import numpy as np
import pytest

from dcltal.data.annotations import Video
from dcltal.data.proposals import load_proposals, write_bsn_csv, write_proposal_json
from dcltal.errors import RepairLog, UserError


def _video(vid, duration, fps=None):
    return Video(id=vid, subset="Test", duration=duration, fps=fps,
                 segments=np.zeros((0, 2)), labels=np.zeros(0, np.int64))


def _sorted_reference(rows):
    """Slow reference: sort (start, end, score) rows by score descending, ties in input order."""
    order = sorted(range(len(rows)), key=lambda i: (-rows[i][2], i))
    return np.array([rows[i] for i in order], dtype=np.float64).reshape(-1, 3)


# ---------------------------------------------------------------- BSN / BMN CSV directory

def test_bsn_csv_as_bsn_writes_it(tmp_path):
    # BSN's PEM output: extra columns, xmin/xmax fractions of the duration, score last
    (tmp_path / "v_a.csv").write_text(
        "xmin,xmax,xmin_score,xmax_score,iou_score,score\n"
        "0.1,0.5,0.9,0.8,0.7,0.504\n"
        "0.2,0.4,0.5,0.5,0.9,0.81\n"
        "0.0,1.0,0.1,0.1,0.2,0.504\n")
    videos = {"v_a": _video("v_a", 50.0)}
    out = load_proposals(tmp_path, videos, 30.0)
    expected = _sorted_reference([[5.0, 25.0, 0.504], [10.0, 20.0, 0.81], [0.0, 50.0, 0.504]])
    np.testing.assert_allclose(out["v_a"], expected)
    assert out["v_a"].dtype == np.float64


def test_bmn_column_order_and_reading_only_asked_videos(tmp_path):
    (tmp_path / "a.csv").write_text("score,xmax,xmin,clr_score\n0.3,0.5,0.25,1\n")
    (tmp_path / "other.csv").write_text("this is not read")
    out = load_proposals(tmp_path, {"a": _video("a", 8.0)}, 30.0)
    assert list(out) == ["a"]
    np.testing.assert_allclose(out["a"], [[2.0, 4.0, 0.3]])


def test_write_bsn_csv_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 80, 20)
    props = np.column_stack([starts, starts + rng.uniform(0.5, 20, 20), rng.uniform(0, 1, 20)])
    write_bsn_csv(tmp_path / "vid.csv", props, 100.0)
    header = (tmp_path / "vid.csv").read_text().splitlines()[0]
    assert header == "xmin,xmax,score"
    out = load_proposals(tmp_path, {"vid": _video("vid", 100.0)}, 30.0)["vid"]
    np.testing.assert_allclose(out, _sorted_reference(props.tolist()), rtol=1e-8)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file


def test_bsn_csv_needs_durations(tmp_path):
    (tmp_path / "a.csv").write_text("xmin,xmax,score\n0.1,0.2,0.5\n")
    with pytest.raises(UserError, match="need an annotation file with durations"):
        load_proposals(tmp_path, None, 30.0)
    with pytest.raises(UserError, match="video a has no duration"):
        load_proposals(tmp_path, {"a": _video("a", None)}, 30.0)


def test_bsn_csv_header_without_score(tmp_path):
    (tmp_path / "a.csv").write_text("xmin,xmax,iou\n0.1,0.2,0.5\n")
    with pytest.raises(UserError, match=r"a\.csv: line 1: header lacks score"):
        load_proposals(tmp_path, {"a": _video("a", 10.0)}, 30.0)


@pytest.mark.parametrize("bad_row", ["0.1,abc,0.5", "0.1,0.2", "0.1,nan,0.5"])
def test_malformed_bsn_row_names_file_and_line(tmp_path, bad_row):
    (tmp_path / "a.csv").write_text(f"xmin,xmax,score\n0.1,0.2,0.5\n{bad_row}\n")
    with pytest.raises(UserError, match=r"a\.csv: line 3: "):
        load_proposals(tmp_path, {"a": _video("a", 10.0)}, 30.0)


# ---------------------------------------------------------------- ActivityNet proposal JSON

def test_proposal_json_round_trip(tmp_path):
    props = {"a": np.array([[1.0, 3.0, 0.2], [0.5, 9.0, 0.9]]), "b": np.zeros((0, 3))}
    write_proposal_json(tmp_path / "p.json", props)
    log = RepairLog()
    out = load_proposals(tmp_path / "p.json", None, 30.0, repairs=log)
    assert set(out) == {"a", "b"}
    np.testing.assert_allclose(out["a"], _sorted_reference(props["a"].tolist()))
    assert out["b"].shape == (0, 3)
    assert log.counts["videos with no proposals (they yield no detections)"] == 1


def test_proposal_json_selects_the_videos_asked_for(tmp_path):
    write_proposal_json(tmp_path / "p.json", {"a": np.array([[1.0, 2.0, 0.5]]), "b": np.array([[0.0, 1.0, 0.5]])})
    log = RepairLog()
    out = load_proposals(tmp_path / "p.json", {"a": _video("a", 10.0), "c": _video("c", 5.0)}, 30.0, repairs=log)
    assert list(out) == ["a", "c"]
    assert out["c"].shape == (0, 3)
    assert log.counts["videos with no proposals (they yield no detections)"] == 1


def test_proposals_for_none_of_the_videos_is_an_error(tmp_path):
    write_proposal_json(tmp_path / "p.json", {"a": np.array([[1.0, 2.0, 0.5]])})
    with pytest.raises(UserError, match="hold none of the 2 videos"):
        load_proposals(tmp_path / "p.json", {"x": _video("x", 10.0), "y": _video("y", 10.0)}, 30.0)


@pytest.mark.parametrize("text, match", [
    ('{"results": {"a": [{"segment": [1, 2]', "not valid JSON: line 1"),
    ('{"database": {}}', 'no "results" object'),
    ('{"results": {"a": [{"segment": [1], "score": 0.5}]}}', "video a: each proposal needs"),
    ('{"results": {"a": [{"segment": [1, 2], "score": "high"}]}}', "video a: each proposal needs"),
    ('{"results": {"a": [{"segment": [1, NaN], "score": 0.5}]}}', "video a: NaN or infinite"),
])
def test_malformed_proposal_json(tmp_path, text, match):
    (tmp_path / "p.json").write_text(text)
    with pytest.raises(UserError, match=match):
        load_proposals(tmp_path / "p.json", None, 30.0)


# ---------------------------------------------------------------- SSN / P-GCN proposal list

SSN_LIST = """# 0
/data/thumos/frames/video_test_0000004
900
1
1
7 150 300
3
7 0.81 0.90 140 310
0 0.00 0.00 0 60
7 0.50 0.55 200 450
# 1
video_test_0000006.mp4
600
1
0
2
3 0.2 0.3 30 90
3 0.9 0.9 100 250
"""


def test_ssn_list_frames_to_seconds_with_each_videos_fps(tmp_path):
    (tmp_path / "bsn_test_proposal_list.txt").write_text(SSN_LIST)
    videos = {"video_test_0000004": _video("video_test_0000004", 30.0, fps=30.0),
              "video_test_0000006": _video("video_test_0000006", 30.0, fps=None)}  # falls back to default_fps
    out = load_proposals(tmp_path / "bsn_test_proposal_list.txt", videos, 20.0)
    # file order is the ranking: scores 1 - i/N
    np.testing.assert_allclose(out["video_test_0000004"],
                               [[140 / 30, 310 / 30, 1.0], [0.0, 2.0, 2 / 3], [200 / 30, 15.0, 1 / 3]])
    np.testing.assert_allclose(out["video_test_0000006"], [[1.5, 4.5, 1.0], [5.0, 12.5, 0.5]])


def test_ssn_list_without_annotations_clips_to_the_frame_count(tmp_path):
    text = SSN_LIST.replace("200 450", "200 950")  # ends after frame 900
    (tmp_path / "list.txt").write_text(text)
    log = RepairLog()
    out = load_proposals(tmp_path / "list.txt", None, 30.0, repairs=log)
    assert out["video_test_0000004"][2, 1] == pytest.approx(30.0)
    assert log.counts["proposals reaching outside the video (clipped)"] == 1


def test_ssn_normalised_list_uses_durations(tmp_path):
    (tmp_path / "norm.txt").write_text("# 0\nvid_a\n1\n1\n0\n2\n0 0 0 0.1 0.5\n0 0 0 0.5 0.75\n")
    out = load_proposals(tmp_path / "norm.txt", {"vid_a": _video("vid_a", 40.0)}, 30.0)
    np.testing.assert_allclose(out["vid_a"], [[4.0, 20.0, 1.0], [20.0, 30.0, 0.5]])
    with pytest.raises(UserError, match="normalised SSN list"):
        load_proposals(tmp_path / "norm.txt", None, 30.0)


@pytest.mark.parametrize("text, line", [
    ("video_a\n900\n1\n0\n0\n", 1),                     # no '# index'
    ("# 0\nvideo_a\nmany\n1\n0\n0\n", 3),                # frame count not a number
    ("# 0\nvideo_a\n900\n1\n0\n2\n0 0 0 10 20\n", 7),   # fewer proposals than announced
    ("# 0\nvideo_a\n900\n1\n0\n1\n0 0 0 ten 20\n", 7),  # a bad proposal line
    ("# 0\nvideo_a\n900\n1\nx\n", 5),                    # ground-truth count not a number
    ("# 0\nvideo_a\n900\n", 4),                          # file ends mid-block
])
def test_malformed_ssn_list_names_file_and_line(tmp_path, text, line):
    (tmp_path / "list.txt").write_text(text)
    with pytest.raises(UserError, match=rf"list\.txt: line {line}: "):
        load_proposals(tmp_path / "list.txt", None, 30.0)


# ---------------------------------------------------------------- repairs and mistakes common to all

def test_outside_reversed_and_empty_are_counted_repairs(tmp_path):
    props = np.array([[-2.0, 3.0, 0.1],    # clipped at 0
                      [8.0, 12.0, 0.9],    # clipped at the duration 10
                      [11.0, 14.0, 0.5],   # wholly outside: dropped
                      [6.0, 4.0, 0.3],     # reversed: swapped
                      [1.0, 2.0, 0.7]])
    write_proposal_json(tmp_path / "p.json", {"a": props})
    log = RepairLog()
    out = load_proposals(tmp_path / "p.json", {"a": _video("a", 10.0), "b": _video("b", 5.0)}, 30.0, repairs=log)
    np.testing.assert_allclose(out["a"], [[8.0, 10.0, 0.9], [1.0, 2.0, 0.7], [4.0, 6.0, 0.3], [0.0, 3.0, 0.1]])
    assert log.counts["proposals reaching outside the video (clipped)"] == 2
    assert log.counts["proposals wholly outside the video (dropped)"] == 1
    assert log.counts["proposals with start after end (swapped)"] == 1
    assert log.counts["videos with no proposals (they yield no detections)"] == 1


def test_repairs_reported_on_stderr_without_a_log(tmp_path, capsys):
    write_proposal_json(tmp_path / "p.json", {"a": np.array([[-1.0, 3.0, 0.1], [-2.0, 1.0, 0.5]])})
    load_proposals(tmp_path / "p.json", {"a": _video("a", 10.0)}, 30.0)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "p.json" in err[0] and "clipped): 2" in err[0]


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match="proposals not found"):
        load_proposals(tmp_path / "absent.json", None, 30.0)


def test_binary_file_is_not_a_proposal_list(tmp_path):
    (tmp_path / "p.bin").write_bytes(b"\x93\xff\xfe\x00\x81")
    with pytest.raises(UserError, match="p.bin is not UTF-8 text: byte 0"):
        load_proposals(tmp_path / "p.bin", None, 30.0)


def test_activitynet_ids_match_with_or_without_the_v_prefix(tmp_path):
    # BSN writes v_<youtube id>.csv; the official annotations have the bare id
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "v_H-yBxySDyTw.csv").write_text("xmin,xmax,score\n0.25,0.5,0.9\n")
    out = load_proposals(tmp_path / "csv", {"H-yBxySDyTw": _video("H-yBxySDyTw", 20.0)}, 30.0)
    np.testing.assert_allclose(out["H-yBxySDyTw"], [[5.0, 10.0, 0.9]])
    # and the other way round: bare ids in the JSON, v_ ids in the annotations
    write_proposal_json(tmp_path / "p.json", {"QhiKgeJV3k0": np.array([[1.0, 2.0, 0.5]])})
    out = load_proposals(tmp_path / "p.json", {"v_QhiKgeJV3k0": _video("v_QhiKgeJV3k0", 20.0)}, 30.0)
    np.testing.assert_allclose(out["v_QhiKgeJV3k0"], [[1.0, 2.0, 0.5]])
