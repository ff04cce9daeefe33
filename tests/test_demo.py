"""dcltal demo end to end on a tiny setting (the hidden --size tiny): report, figures, numbers in range."""
from __future__ import annotations

import json
import re

from dcltal.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


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
    table = [line for line in text.splitlines() if line.startswith("| ")][1:]  # rows under the header
    assert len(table) == len(report["rows"])
    for fig in report["figures"]:
        assert (out / fig["file"]).read_bytes()[:8] == PNG and f"]({fig['file']})" in text
    names = {f["file"] for f in report["figures"]}
    assert {"training_curves.png", "timeline.png", "attention_rgb_0.png", "attention_flow_0.png"} <= names
