"""dcltal ablate on a tiny synthetic set: tables, JSON, mean/std against numpy, skipping finished runs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dcltal.cli import main
from dcltal.data.synth import write_synthetic
from dcltal.engine.checkpoint import load_checkpoint

CONFIG = Path(__file__).resolve().parent.parent / "dcltal" / "configs" / "synth_ablation.yaml"
DIM, CLASSES = 16, 4


def tiny_overrides(synth: Path) -> list[str]:
    """The tiny demo's sizes (tests/test_demo.py): 6 training videos, one epoch, small heads."""
    return [f"data.annotations={synth / 'annotations.json'}", f"data.features={synth / 'features'}",
            f"data.proposals={synth / 'proposals'}", f"data.classes={synth / 'classes.txt'}",
            f"data.streams={{rgb: [0, {DIM}], flow: [{DIM}, {2 * DIM}]}}", f"model.num_classes={CLASSES}",
            "train.epochs=1", "train.lr_steps=[]", "model.hidden_dim=8", "model.cls_hidden=32", "model.loc_hidden=48"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ablate") / "synth"
    write_synthetic(out, seed=0, videos_train=6, videos_test=1, classes=CLASSES, dim=DIM, progress=False)
    return out


def ablate(synth: Path, out: Path, *extra: str, video_scores: str = "builtin") -> int:
    return main(["ablate", str(CONFIG), "--out", str(out), *extra, "--set", *tiny_overrides(synth),
                 f"infer.video_scores={video_scores}"])


@pytest.fixture(scope="module")
def study(synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study")
    # no video-level classifier here (seconds saved a run); the one-seed test below keeps it
    assert ablate(synth, out, "--variants", "dnet", "baseline", "--seeds", "2", video_scores="null") == 0
    return out


def checkpoints(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sorted((out / "runs").rglob("*.pt"))}


def test_tables_and_json_are_well_formed(study):
    data = json.loads((study / "ablations.json").read_text())
    assert data["num_seeds"] == 2 and data["seeds"] == [0, 1] and data["ddof"] == 1
    assert data["variants"] == ["dnet", "baseline"]  # the canonical order, whatever the command's
    # Table 1 keeps baseline and D-Net, Table 2 all four regroupings, Table 3 all four rows, Table 4 only "Ours"
    rows = {t["id"]: [tuple(r["labels"]) for r in t["rows"]] for t in data["tables"]}
    assert rows == {"table1": [("Baseline",), ("+ D-Net",)],
                    "table2": [("F_cls", "F_loc"), ("F_cls", "F_cls"), ("F_loc", "F_loc"), ("F_loc", "F_cls")],
                    "table3": [("F_pro", "F_pro"), ("F_pro", "F_loc"), ("F_cls", "F_pro"), ("F_cls", "F_loc")],
                    "table4": [("Ours",)]}
    for table in data["tables"]:
        assert table["groups"] == ["rgb", "flow", "fusion"]
        for row in table["rows"]:
            assert set(row["per_seed"]) == {"0", "1"}
            for seed in row["per_seed"].values():
                for ev in seed.values():
                    assert len(ev["mAP"]) == len(data["tiou"]) and all(0 <= m <= 1 for m in ev["mAP"])
                    assert ev["average_mAP"] == pytest.approx(np.mean(ev["mAP"]))
    table1 = data["tables"][0]
    assert all(r["params"] > 0 for r in table1["rows"])
    assert table1["rows"][0]["params"] < table1["rows"][1]["params"]  # D-Net adds parameters to the baseline

    text = (study / "ablations.md").read_text()
    assert "dcltal ablate" in text and "2 seeds" in text and "ddof = 1" in text and "```yaml" in text
    assert "| Method | RGB | Flow | Fusion | #Params (RGB) |" in text
    assert "| Cls. | Loc. | RGB | Flow | Fusion |" in text
    cells = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert sum(line.count("±") for line in cells) == 3 * (2 + 4 + 4 + 1)  # every cell: mean ± std
    assert "Random vectors" not in text  # a row of a variant not trained is left out


def test_mean_and_std_match_numpy(study):
    data = json.loads((study / "ablations.json").read_text())
    for table in data["tables"]:
        for row in table["rows"]:
            for group in table["groups"]:
                maps = np.array([row["per_seed"][s][group]["mAP"] for s in ("0", "1")])  # [seeds, tIoU]
                np.testing.assert_allclose(row["mean"][group]["mAP"], maps.mean(axis=0))
                np.testing.assert_allclose(row["std"][group]["mAP"], maps.std(axis=0, ddof=1))
                avg = [row["per_seed"][s][group]["average_mAP"] for s in ("0", "1")]
                assert row["std"][group]["average_mAP"] == pytest.approx(np.std(avg, ddof=1))


def test_shared_rows_agree(study):
    """Table 3's first row is Table 1's baseline; Table 2's and 3's last row (ours) Table 1's D-Net."""
    tables = {t["id"]: t for t in json.loads((study / "ablations.json").read_text())["tables"]}
    t1 = {r["labels"][0]: r for r in tables["table1"]["rows"]}
    assert tables["table3"]["rows"][0]["per_seed"] == t1["Baseline"]["per_seed"]
    assert tables["table3"]["rows"][-1]["per_seed"] == t1["+ D-Net"]["per_seed"]
    assert tables["table2"]["rows"][0]["per_seed"] == t1["+ D-Net"]["per_seed"]
    mixed = tables["table3"]["rows"][1]["recipe"]
    assert (mixed["cls_from"], mixed["loc_from"]) == ("baseline", "dnet")


CLASSIFIER_TRAININGS = []  # the video-level classifier trainings of the one_seed study


@pytest.fixture(scope="module")
def one_seed(synth, tmp_path_factory) -> Path:
    from dcltal.engine.detection import video_classifier

    out = tmp_path_factory.mktemp("one_seed")
    real = video_classifier.train_video_classifier

    def counted(*args, **kwargs):
        CLASSIFIER_TRAININGS.append(len(args[0]))
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(video_classifier, "train_video_classifier", counted)
        assert ablate(synth, out, "--variants", "mlp1", "baseline") == 0  # with the built-in video-level classifier
    return out


def test_one_seed_has_no_std(one_seed):
    data = json.loads((one_seed / "ablations.json").read_text())
    assert [[r["labels"] for r in t["rows"]] for t in data["tables"]] == [[["Baseline"], ["+ MLP1"]],
                                                                           [["F_pro", "F_pro"]]]
    row = data["tables"][0]["rows"][0]
    assert row["std"]["fusion"]["average_mAP"] is None and all(s is None for s in row["std"]["rgb"]["mAP"])
    assert row["mean"]["rgb"]["mAP"] == row["per_seed"]["0"]["rgb"]["mAP"]
    text = (one_seed / "ablations.md").read_text()
    assert "±" not in text.split("## Table")[1] and "one seed" in text


def test_one_video_classifier_a_seed(one_seed):
    """builtin video-level scores: the seed's first run trains the classifier and the others reuse it
    (their validation reads it), so every checkpoint carries the same one."""
    runs = json.loads((one_seed / "ablations.json").read_text())["runs"]
    assert runs["baseline"]["0"].get("video_scores_source") and "video_scores_source" not in runs["mlp1"]["0"]
    assert len(CLASSIFIER_TRAININGS) == 1  # two runs, one training
    first, other = (load_checkpoint(runs[v]["0"]["checkpoint"])["video_classifier"] for v in ("baseline", "mlp1"))
    assert set(first) == set(other) == {"rgb", "flow"}
    assert all(torch.equal(first[s][k], other[s][k]) for s in first for k in first[s])


def test_rerun_skips_finished_and_resumes_killed_runs(one_seed, synth):
    before = checkpoints(one_seed)
    assert len(before) >= 2  # last.pt (and best.pt where validated) of both runs
    report = json.loads((one_seed / "ablations.json").read_text())
    assert all(r["0"]["trained_now"] for r in report["runs"].values())

    assert ablate(synth, one_seed, "--variants", "baseline", "mlp1") == 0  # finished: skipped
    rerun = json.loads((one_seed / "ablations.json").read_text())
    assert not any(r["0"]["trained_now"] for r in rerun["runs"].values()) and checkpoints(one_seed) == before
    assert rerun["tables"] == report["tables"]  # the same checkpoints give the same numbers

    # killed after its last epoch, before it was marked done: resumes from last.pt, nothing left to train
    (one_seed / "runs" / "mlp1" / "seed0" / "done.json").unlink()
    assert ablate(synth, one_seed, "--variants", "baseline", "mlp1") == 0
    resumed = json.loads((one_seed / "runs" / "mlp1" / "seed0" / "done.json").read_text())
    assert resumed["resumed"] and checkpoints(one_seed) == before


def test_unknown_variant_is_one_line_exit_2(synth, tmp_path, capsys):
    assert ablate(synth, tmp_path, "--variants", "dnet", "mlp3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mlp3" in err[0] and "--variants" in err[0]
    assert not (tmp_path / "runs").exists()
