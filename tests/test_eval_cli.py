"""`dcltal eval` and `dcltal eval-proposals` from the command line: outputs, options, mistakes, no torch."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dcltal.cli import main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "thumos14"
needs_shared = pytest.mark.skipif(not DATA.exists(), reason="../shared/data not present")


@pytest.fixture
def files(tmp_path):
    gt = {"database": {
        "a": {"subset": "Test", "duration": 30.0, "annotations": [{"label": "Jump", "segment": [1.0, 5.0]},
                                                                  {"label": "Run", "segment": [10.0, 20.0]}]},
        "b": {"subset": "Test", "duration": 30.0, "annotations": [{"label": "Jump", "segment": [2.0, 4.0]}]},
        "c": {"subset": "Train", "duration": 30.0, "annotations": [{"label": "Run", "segment": [2.0, 4.0]}]}}}
    pred = {"results": {"a": [{"label": "Jump", "score": 0.9, "segment": [1.0, 5.0]},
                              {"label": "Run", "score": 0.8, "segment": [10.0, 19.0]}],
                        "b": [{"label": "Jump", "score": 0.7, "segment": [20.0, 25.0]}]}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    return tmp_path


def _eval(d, *extra):
    return main(["eval", "--gt", str(d / "gt.json"), "--pred", str(d / "pred.json"), "--subset", "Test", *map(str, extra)])


def test_table_and_json(files, capsys):
    assert _eval(files, "--tiou", 0.5, 0.95, "--json", files / "out.json") == 0
    out = json.loads((files / "out.json").read_text())
    assert list(out) == ["tiou", "mAP", "average_mAP", "per_class_ap"]
    assert out["tiou"] == [0.5, 0.95] and out["per_class_ap"]["Run"] == [1.0, 0.0]
    assert out["per_class_ap"]["Jump"] == [0.5, 0.5]
    printed = capsys.readouterr().out
    assert "0.50    75.00" in printed and "avg" in printed


def test_avoid_and_thumos14_export(files, capsys):
    (files / "avoid.txt").write_text("b CricketShot\n")
    (files / "ids.txt").write_text("3 Jump\n12 Run\n")
    assert _eval(files, "--protocol", "thumos14", "--avoid", files / "avoid.txt", "--json", files / "o.json",
                 "--export-thumos14", files / "sub.txt", "--class-ids", files / "ids.txt") == 0
    assert json.loads((files / "o.json").read_text())["mAP"][0] == 1.0
    assert (files / "sub.txt").read_text().splitlines() == ["a 1.0 5.0 3 0.9", "a 10.0 19.0 12 0.8"]


@needs_shared
def test_export_with_the_shared_class_csv(files):
    gt = {"database": {"video_test_0000004": {"subset": "Test", "annotations": [
        {"label": "CricketBowling", "segment": [0.2, 1.1]}]}}}
    (files / "gt.json").write_text(json.dumps(gt))
    pred = {"results": {"video_test_0000004": [{"label": "CricketBowling", "score": 0.5, "segment": [0.2, 1.1]}]}}
    (files / "pred.json").write_text(json.dumps(pred))
    for ids in (DATA / "classes" / "thumos14_classes.csv", DATA / "classes" / "ucf101_classInd.txt"):
        assert _eval(files, "--export-thumos14", files / "sub.txt", "--class-ids", ids) == 0
        assert (files / "sub.txt").read_text() == "video_test_0000004 0.2 1.1 23 0.5\n"


@pytest.mark.parametrize("change, extra, words", [
    (lambda p: p["results"]["a"].append({"label": "Swim", "score": 1, "segment": [0, 1]}), [], "'Swim' is not a class"),
    (lambda p: p["results"]["a"].append({"label": "Run", "score": "x", "segment": [0, 1]}), [], "'score'"),
    (lambda p: p["results"]["a"].append({"label": "Run", "score": 1, "segment": [0]}), [], "'segment'"),
    (lambda p: p["results"]["a"].append({"label": "Run", "segment": [0, 1]}), [], "lacks the key 'score'"),
    (lambda p: p.pop("results"), [], "no 'results'"),
    (None, ["--subset", "test"], "subset 'test' not in the annotations"),
    (None, ["--tiou", "1.5"], "tIoU thresholds"),
    (None, ["--export-thumos14", "x.txt"], "--class-ids"),
    (None, ["--avoid", "/nonexistent/avoid.txt"], "video list not found"),
])
def test_mistakes_exit_2_with_one_line(files, capsys, change, extra, words):
    if change:
        pred = json.loads((files / "pred.json").read_text())
        change(pred)
        (files / "pred.json").write_text(json.dumps(pred))
    assert _eval(files, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_class_missing_from_the_class_id_file(files, capsys):
    (files / "ids.txt").write_text("3 Jump\n")
    assert _eval(files, "--export-thumos14", files / "s.txt", "--class-ids", files / "ids.txt") == 2
    assert "'Run' has no id" in capsys.readouterr().err


def test_videos_outside_the_subset_are_a_warning(files, capsys):
    pred = json.loads((files / "pred.json").read_text())
    pred["results"]["c"] = [{"label": "Run", "score": 0.1, "segment": [2.0, 4.0]}]
    (files / "pred.json").write_text(json.dumps(pred))
    assert _eval(files) == 0
    assert "1 videos are not in subset 'Test'" in capsys.readouterr().err


def test_eval_proposals_json(files):
    props = {"results": {"a": [{"segment": [1.0, 5.0], "score": 0.9}, {"segment": [10.0, 20.0], "score": 0.5}],
                         "b": [{"segment": [2.0, 4.0], "score": 0.9}]}}
    (files / "props.json").write_text(json.dumps(props))
    assert main(["eval-proposals", "--gt", str(files / "gt.json"), "--proposals", str(files / "props.json"),
                 "--subset", "Test", "--json", str(files / "p.json")]) == 0
    out = json.loads((files / "p.json").read_text())
    assert list(out) == ["AR@1", "AR@5", "AR@10", "AR@100", "AUC", "recall@0.5", "recall@0.7"]
    assert out["AR@100"] == 1.0 and list(out["recall@0.5"]) == ["1", "5", "10", "50", "100"]


@pytest.mark.parametrize("command", ["eval", "eval-proposals", "convert"])
def test_commands_do_not_import_torch(files, command):
    props = {"results": {"a": [{"segment": [1.0, 5.0], "score": 0.9}]}}
    (files / "props.json").write_text(json.dumps(props))
    (files / "ann").mkdir()
    (files / "ann" / "Jump_test.txt").write_text("a 1.0 2.0\n")
    argv = {"eval": ["eval", "--gt", files / "gt.json", "--pred", files / "pred.json", "--subset", "Test"],
            "eval-proposals": ["eval-proposals", "--gt", files / "gt.json", "--proposals", files / "props.json",
                               "--subset", "Test"],
            "convert": ["convert", "thumos14", files / "ann", "--out", files / "o.json"]}[command]
    code = ("import sys; from dcltal.cli import main; rc = main(sys.argv[1:]); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


ANET = DATA.parent / "activitynet13" / "activity_net.v1-3.derived.json"


@needs_shared
def test_real_activitynet_ground_truth_as_predictions_scores_one(tmp_path):
    # includes the 12 zero-length segments (tIoU 1 with themselves) and 215 ending past the video
    db = json.loads(ANET.read_text())["database"]
    pred = {"results": {v: [{"label": a["label"], "score": 1.0, "segment": a["segment"]} for a in e["annotations"]]
                        for v, e in db.items() if e["subset"] == "validation"}}
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    assert main(["eval", "--gt", str(ANET), "--pred", str(tmp_path / "pred.json"), "--subset", "validation",
                 "--json", str(tmp_path / "o.json")]) == 0
    out = json.loads((tmp_path / "o.json").read_text())
    assert len(out["per_class_ap"]) == 200 and out["mAP"] == [1.0] * 10


@needs_shared
def test_real_thumos14_converted_with_avoid_list(tmp_path):
    assert main(["convert", "thumos14", str(DATA / "official_annotations" / "annotations_test"),
                 "--out", str(tmp_path / "gt.json")]) == 0
    af = json.loads((DATA / "actionformer" / "thumos14.json").read_text())["database"]
    pred = {"results": {v: [{"label": a["label"], "score": 0.5, "segment": a["segment"]} for a in e["annotations"]]
                        for v, e in af.items() if e["subset"] == "Test"}}
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    args = ["eval", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"), "--subset", "Test",
            "--protocol", "thumos14", "--json", str(tmp_path / "o.json")]
    assert main(args + ["--avoid", str(DATA / "ssn" / "test_avoid_videos.txt")]) == 0
    assert json.loads((tmp_path / "o.json").read_text())["mAP"] == [1.0] * 5


def test_classes_without_ground_truth_in_the_subset_are_a_warning(files, capsys):
    pred = json.loads((files / "pred.json").read_text())
    pred["results"]["a"] = [d for d in pred["results"]["a"] if d["label"] == "Jump"]
    (files / "gt.json").write_text((files / "gt.json").read_text().replace('"Run", "segment": [10.0', '"Jump", "segment": [10.0'))
    pred["results"]["b"].append({"label": "Run", "score": 0.2, "segment": [0.0, 1.0]})
    (files / "pred.json").write_text(json.dumps(pred))
    assert _eval(files) == 0
    assert "1 classes without ground truth in subset 'Test' are not scored (e.g. 'Run')" in capsys.readouterr().err


def test_a_subset_without_ground_truth_is_a_mistake(files, capsys):
    (files / "avoid.txt").write_text("a\nb\n")
    assert _eval(files, "--avoid", files / "avoid.txt") == 2
    assert "no ground-truth instances once --avoid videos are left out" in capsys.readouterr().err
