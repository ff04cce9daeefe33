"""Tables from the accuracy zoo's summary.json files.

    python benchmarks/accuracy/report.py OUT                       markdown: every tag's settings, ActionFormer beside
    python benchmarks/accuracy/report.py OUT --compare TAG_A TAG_B fused avg mAP of two tags, setting by setting

Reads OUT/runs/<tag>/<setting>/summary.json (run_zoo.py) and OUT/actionformer/<setting>/summary.json
(the ActionFormer runner: the same schema, "system": "actionformer", one row "all").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from settings import KNOWN

ROWS = ("fused", "rgb", "flow", "no_video_scores")


def in_zoo_order(names) -> list[str]:
    """The zoo's own order (settings.py), then anything else (e.g. --quick runs) by name."""
    order = {n: i for i, n in enumerate(KNOWN)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def load(out: Path) -> tuple[dict[str, dict[str, dict]], dict[str, dict]]:
    """({tag: {setting: summary}}, {setting: ActionFormer's summary})."""
    runs: dict[str, dict[str, dict]] = {}
    for f in sorted(out.glob("runs/*/*/summary.json")):
        s = json.loads(f.read_text())
        runs.setdefault(s["tag"], {})[s["setting"]] = s
    peer = {s["setting"]: s for s in (json.loads(f.read_text()) for f in sorted(out.glob("actionformer/*/summary.json")))}
    return runs, peer


def cell(row: dict | None) -> str:
    if not row:
        return "-"
    if row["avg_mAP"] is None:  # not scorable (run_zoo.py keeps the reason in summary.json)
        return "n/a"
    return f"{row['avg_mAP']:.1f} / {row['mAP@0.5']:.1f}"


def markdown(runs: dict[str, dict[str, dict]], peer: dict[str, dict]) -> str:
    lines = []
    for tag, settings in sorted(runs.items()):
        lines += [f"### tag `{tag}`", "",
                  "avg mAP / mAP@0.5 (%), dcltal with last.pt; protocol per setting; ratio = dcltal fused / "
                  "ActionFormer, average mAP", "",
                  "| setting | protocol | dcltal fused | RGB | Flow | no video-level scores | ActionFormer | "
                  "dcltal train s | ActionFormer train s | ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name in in_zoo_order(settings):
            s = settings[name]
            p = peer.get(name)
            theirs = p["rows"]["all"] if p else None
            ours_avg = s["rows"]["fused"]["avg_mAP"]
            ratio = f"{ours_avg / theirs['avg_mAP']:.2f}" if ours_avg is not None and theirs and theirs["avg_mAP"] else "-"
            peer_s = f"{p['train_wall_s']:.0f}" if p and p.get("train_wall_s") is not None else "-"
            ours = " | ".join(cell(s["rows"].get(r)) for r in ROWS)
            lines.append(f"| {name} | {s['protocol']} | {ours} | {cell(theirs)} | {s['train_wall_s']:.0f} | {peer_s} | {ratio} |")
        lines.append("")
    missing = sorted(set(peer) - {n for settings in runs.values() for n in settings})
    if missing:
        lines.append("ActionFormer only (no dcltal run): " + ", ".join(f"{n} {cell(peer[n]['rows']['all'])}" for n in missing))
    return "\n".join(lines)


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def compare(runs: dict[str, dict[str, dict]], a: str, b: str) -> str:
    for tag in (a, b):
        if tag not in runs:
            raise SystemExit(f"no runs of tag {tag!r}; tags found: {', '.join(sorted(runs)) or 'none'}")
    lines = [f"{'setting':<22} {a:>14} {b:>14} {'diff':>7}   (fused average mAP, %)"]
    diffs = []
    for name in in_zoo_order(set(runs[a]) | set(runs[b])):
        x, y = (runs[t].get(name, {}).get("rows", {}).get("fused", {}).get("avg_mAP") for t in (a, b))
        if x is not None and y is not None:
            diffs.append(y - x)
        d = f"{y - x:+7.1f}" if x is not None and y is not None else "      -"
        lines.append(f"{name:<22} {fmt(x):>14} {fmt(y):>14} {d}")
    if diffs:
        lines.append(f"{'mean diff':<52} {sum(diffs) / len(diffs):+7.1f}  ({sum(d > 0 for d in diffs)} of {len(diffs)} better)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="run_zoo.py's --out")
    parser.add_argument("--compare", nargs=2, metavar=("TAG_A", "TAG_B"), help="fused avg mAP of two tags side by side")
    args = parser.parse_args(argv)
    runs, peer = load(args.out)
    print(compare(runs, *args.compare) if args.compare else markdown(runs, peer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
