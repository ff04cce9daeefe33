"""dcltal demo end to end on a tiny setting (the hidden --size tiny): report, figures, numbers in range."""
from __future__ import annotations

import json
import re

from dcltal.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _check_proposal_recall(report, text):
    recall = report["proposals"]
    for key in ("AR@1", "AR@5", "AR@10", "AR@100", "AUC"):
        assert 0.0 <= recall[key] <= 1.0
    assert recall["AR@1"] <= recall["AR@5"] <= recall["AR@10"] <= recall["AR@100"]
    for thr in ("recall@0.5", "recall@0.7"):
        assert list(recall[thr]) == ["1", "5", "10", "50", "100"]
    assert all(recall["recall@0.7"][n] <= recall["recall@0.5"][n] for n in recall["recall@0.5"])
    assert "## Proposals on the test split" in text and f"{100 * recall['AUC']:.2f}" in text


def test_demo_writes_report_and_figures(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.md'}" in printed
    assert re.search(r"mAP@0\.5 .*: \d+\.\d\d%", printed)

    report = json.loads((out / "report.json").read_text())
    methods = [r["method"] for r in report["rows"]]
    assert any(m.startswith("baseline") for m in methods) and any(m.startswith("ours") for m in methods)
    for row in report["rows"]:
        assert row["tiou"] == [0.3, 0.4, 0.5, 0.6, 0.7]
        assert all(0.0 <= x <= 1.0 for x in row["mAP"]) and 0.0 <= row["average_mAP"] <= 1.0
        assert abs(row["average_mAP"] - sum(row["mAP"]) / len(row["mAP"])) < 1e-9

    text = (out / "report.md").read_text()
    for key in ("data", "features", "seed", "device", "evaluation", "inference"):
        assert f"**{key}" in text or key in text
    section = text.split("## Detection mAP")[1].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("| ")][1:]  # rows under the header
    assert len(table) == len(report["rows"])
    assert any("proposal_score=multiply" in r["note"] for r in report["rows"])  # the Table 6 row
    _check_proposal_recall(report, text)
    for fig in report["figures"]:
        assert (out / fig["file"]).read_bytes()[:8] == PNG and f"]({fig['file']})" in text
    names = {f["file"] for f in report["figures"]}
    assert {"training_curves.png", "timeline.png", "attention_rgb_0.png", "attention_flow_0.png"} <= names


def test_demo_with_builtin_proposals(tmp_path, capsys):
    """--proposals builtin: the generator is trained, proposes for both splits, and the detector uses them."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "tiny", "--proposals", "builtin"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"proposals \(builtin\) on the test split: AR@100 \d+\.\d\d%", printed)
    assert (out / "generator" / "checkpoints" / "last.pt").is_file()

    written = json.loads((out / "proposals_builtin.json").read_text())["results"]
    gt = json.loads((out / "synth" / "annotations.json").read_text())["database"]
    assert set(written) == set(gt)  # train and test subsets
    for vid, items in written.items():
        assert items and all(0.0 <= p["segment"][0] < p["segment"][1] <= gt[vid]["duration"] + 1e-6 for p in items)

    report = json.loads((out / "report.json").read_text())
    assert str(out / "proposals_builtin.json") in report["setting"]["proposals"]
    assert report["setting"]["command"].endswith("--proposals builtin")
    text = (out / "report.md").read_text()
    _check_proposal_recall(report, text)
    from dcltal.data.annotations import load_annotations
    from dcltal.data.proposals import load_proposals
    from dcltal.eval import evaluate_proposals

    ann = load_annotations(out / "synth" / "annotations.json")
    again = evaluate_proposals(ann, load_proposals(out / "proposals_builtin.json", ann.videos, 30.0), "Test")
    assert again == report["proposals"]  # the recall of the file the detector read, on the test split
    # the detector was trained and evaluated on the built-in proposals: its config says so
    import torch

    ckpt = torch.load(out / "work" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["config"]["data"]["proposals"] == str(out / "proposals_builtin.json")


def test_command_choices_and_row_labels_come_from_the_experiment():
    """commands/demo.py parses only; its choices are the experiment's, and rows are labelled from the config."""
    from dcltal.commands import demo as command
    from dcltal.engine.detection import demo

    assert set(command.PROPOSAL_CHOICES) == set(demo.PROPOSALS) and set(command.SIZE_CHOICES) == set(demo.SIZES)
    assert demo.stream_label(["rgb", "flow"], {"rgb": 5.0, "flow": 6.0}) == "RGB + Flow (5:6)"
    assert demo.stream_label(["flow", "rgb"], {"rgb": 1.0, "flow": 2.0}) == "Flow + RGB (2:1)"
    assert demo.stream_label(["rgb"], {"rgb": 5.0}) == "RGB"
