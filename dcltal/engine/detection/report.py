"""The demo's report: a markdown page with mAP tables that say how they were made, and figures.

Every table line names its features, streams and fusion, and the page states the seed, the device,
the tIoU list and the protocol (STYLE: reports people can trust). The same numbers go to a JSON
file beside it, as fractions in [0, 1].
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dcltal.io import write_json, write_text


@dataclass
class ReportRow:
    method: str  # e.g. "D-Net + A-Net (ours)"
    streams: str  # e.g. "RGB", "Flow", "RGB + Flow (5:6)"
    metrics: dict  # the `eval --json` object: {tiou, mAP, average_mAP, per_class_ap}
    note: str = ""


@dataclass
class Report:
    title: str
    setting: dict[str, str]  # what the reader needs to reproduce it: data, features, seed, device, command
    rows: list[ReportRow] = field(default_factory=list)
    proposals: dict | None = None  # the `eval-proposals --json` object of the proposals used, on the test split
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, file name beside the report)
    notes: list[str] = field(default_factory=list)


def _table(rows: list[ReportRow]) -> list[str]:
    tiou = rows[0].metrics["tiou"]
    head = "| method | streams | " + " | ".join(f"mAP@{t:g}" for t in tiou) + " | average | notes |"
    lines = [head, "|" + "---|" * (len(tiou) + 4)]
    for r in rows:
        cells = " | ".join(f"{100 * m:.2f}" for m in r.metrics["mAP"])
        lines.append(f"| {r.method} | {r.streams} | {cells} | {100 * r.metrics['average_mAP']:.2f} | {r.note} |")
    return lines


def _proposal_table(recall: dict) -> list[str]:
    ans = [n for n in ("10", "50", "100") if n in recall["recall@0.5"]]  # the JSON holds AN = 1 and 5 too
    head = (["AR@1", "AR@5", "AR@10", "AR@100", "AUC"] + [f"R@0.5, AN={n}" for n in ans]
            + [f"R@0.7, AN={n}" for n in ans])
    cells = ([recall[k] for k in head[:5]] + [recall["recall@0.5"][n] for n in ans]
             + [recall["recall@0.7"][n] for n in ans])
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            "| " + " | ".join(f"{100 * x:.2f}" for x in cells) + " |"]


def render(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in report.setting.items()]
    lines += ["", "## Detection mAP (%) on the test split", ""]
    lines += _table(report.rows)
    if report.proposals is not None:
        lines += ["", "## Proposals on the test split (%)", "",
                  "ActivityNet's proposal protocol (`dcltal eval-proposals`): AR averaged over tIoU 0.5:0.05:0.95 "
                  "at AN proposals a video, AUC of AR over AN = 1..100, and recall at tIoU 0.5 and 0.7.", ""]
        lines += _proposal_table(report.proposals)
    if report.notes:
        lines += [""] + [f"- {n}" for n in report.notes]
    if report.figures:
        lines += ["", "## Figures", ""]
        for caption, name in report.figures:
            lines += [f"**{caption}**", "", f"![{caption}]({name})", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(report: Report, out_dir: str | os.PathLike) -> Path:
    """DIR/report.md and DIR/report.json (every number, fractions in [0, 1]); returns the .md path."""
    out = Path(out_dir)
    write_text(out / "report.md", render(report))
    write_json(out / "report.json", {
        "title": report.title, "setting": report.setting, "notes": report.notes,
        "rows": [{"method": r.method, "streams": r.streams, "note": r.note, "tiou": r.metrics["tiou"],
                  "mAP": r.metrics["mAP"], "average_mAP": r.metrics["average_mAP"]} for r in report.rows],
        "proposals": report.proposals,
        "figures": [{"caption": c, "file": f} for c, f in report.figures],
    }, indent=1)
    return out / "report.md"
