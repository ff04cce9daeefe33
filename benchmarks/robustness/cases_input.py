"""Cases of bad data and bad use: each runs the real ``dcltal`` once (or twice) and judges the outcome."""
from __future__ import annotations

import json
import os

import numpy as np

from harness import Outcome, Workspace, copy_tree, refused, refused_or_warned, succeeded, unchanged
from registry import case

BAD_BYTES = b"\xff\xfe\x80"  # never UTF-8


def _infer(ws: Workspace, d, *sets: str):
    out = d / "r.json"
    argv = ["infer", ws.cfg, "--checkpoint", ws.checkpoint, "--out", out, "--quiet"]
    return ws.run(*argv, *(["--set", *sets] if sets else [])), out


def _infer_features(ws: Workspace, name: str, arr, *names: str) -> Outcome:
    feats = ws.features_with(name, ws.te, arr)
    p, _ = _infer(ws, feats.parent, f"data.features={feats}")
    return refused(p, *names)


# ---------------------------------------------------------------- bad data: features


@case("bad data", quick=True)
def features_times_1e30(ws):
    return _infer_features(ws, "x1e30", ws.features_of(ws.te) * np.float32(1e30), ws.te)


@case("bad data", quick=True)
def features_float64_1e300(ws):
    arr = ws.features_of(ws.te).astype(np.float64)
    arr[0, 0] = 1e300  # finite in float64, inf in float32
    return _infer_features(ws, "f64", arr, ws.te)


@case("bad data")
def features_complex(ws):
    return _infer_features(ws, "complex", ws.features_of(ws.te) * (1 + 1j), ws.te, "complex")


@case("bad data")
def features_strings(ws):
    return _infer_features(ws, "strings", np.array([["a", "b"], ["c", "d"]]), ws.te)


@case("bad data")
def features_structured(ws):
    arr = np.zeros((50, 2), dtype=[("x", "f4"), ("y", "i4")])
    return _infer_features(ws, "structured", arr, ws.te)


@case("bad data")
def features_nan(ws):
    arr = ws.features_of(ws.te)
    arr[3, 1] = np.nan
    return _infer_features(ws, "nan", arr, ws.te)


@case("bad data", quick=True)
def features_one_snippet_for_the_whole_video(ws):
    return _infer_features(ws, "one_snippet", ws.features_of(ws.te)[:1], ws.te)


@case("bad data")
def features_a_fifth_short(ws):
    arr = ws.features_of(ws.te)
    feats = ws.features_with("fifth_short", ws.te, arr[: len(arr) * 4 // 5])
    p, _ = _infer(ws, feats.parent, f"data.features={feats}")
    return refused_or_warned(p, "shorter", ws.te)


# ---------------------------------------------------------------- bad data: annotations, proposals


def _eval(ws: Workspace, gt, pred=None, *extra):
    return ws.run("eval", "--gt", gt, "--pred", pred or ws.results, "--subset", "Test", *extra)


@case("bad data", quick=True)
def duplicate_video_ids_in_annotations(ws):
    text = ws.annotations.read_text()
    db = json.loads(text)["database"]
    # the same video twice: the later entry (no instances) would silently win
    dup = text.replace('"database": {', f'"database": {{"{ws.te}": {json.dumps({**db[ws.te], "annotations": []})}, ', 1)
    gt = ws.fresh("dup") / "gt.json"
    gt.write_text(dup)
    return refused(_eval(ws, gt), ws.te)


def _gt_with(ws: Workspace, name: str, segment) -> os.PathLike:
    obj = json.loads(ws.annotations.read_text())
    anns = obj["database"][ws.te]["annotations"]
    anns.append({**anns[0], "segment": segment})
    gt = ws.fresh(name) / "gt.json"
    gt.write_text(json.dumps(obj))
    return gt


@case("bad data", quick=True)
def negative_ground_truth(ws):
    return refused_or_warned(_eval(ws, _gt_with(ws, "neg_gt", [-5.0, -1.0])), "before 0 s", ws.te)


@case("bad data")
def zero_length_proposals(ws):
    d = ws.fresh("zero_props")
    props = {"results": {v: [{"segment": [3.0, 3.0], "score": 0.9}, {"segment": [2.0, 6.0], "score": 0.8}]
                         for v in ws.test_ids}}
    (d / "p.json").write_text(json.dumps(props))
    p, _ = _infer(ws, d, f"data.proposals={d / 'p.json'}")
    return refused_or_warned(p, "zero-length", ws.te)


# ---------------------------------------------------------------- bad data: bytes that are not UTF-8


def _not_utf8(ws: Workspace, name: str, source, keep_at: int = 10):
    """A copy of ``source``'s text (or the text itself) with bytes that are not UTF-8 at ``keep_at``."""
    raw = source.read_bytes() if hasattr(source, "read_bytes") else source.encode()
    d = ws.fresh(f"utf8_{name}")
    return d, raw[:keep_at] + BAD_BYTES + raw[keep_at:]


@case("bad data", quick=True)
def not_utf8_annotations(ws):
    d, raw = _not_utf8(ws, "gt", ws.annotations, 40)
    (d / "gt.json").write_bytes(raw)
    return refused(_eval(ws, d / "gt.json"), "gt.json", "byte 40")


@case("bad data")
def not_utf8_results(ws):
    d, raw = _not_utf8(ws, "pred", ws.results, 30)
    (d / "pred.json").write_bytes(raw)
    return refused(_eval(ws, ws.annotations, d / "pred.json"), "pred.json", "byte 30")


@case("bad data")
def not_utf8_classes(ws):
    d, raw = _not_utf8(ws, "classes", ws.data / "classes.txt", 2)
    (d / "classes.txt").write_bytes(raw)
    return refused(_eval(ws, ws.annotations, None, "--classes", d / "classes.txt"), "classes.txt", "byte 2")


@case("bad data", quick=True)
def not_utf8_config(ws):
    d, raw = _not_utf8(ws, "config", ws.cfg, 5)
    (d / "cfg.yaml").write_bytes(raw)
    return refused(ws.run("params", d / "cfg.yaml"), "cfg.yaml", "byte 5")


@case("bad data")
def not_utf8_proposals_csv(ws):
    d = ws.fresh("utf8_csv") / "proposals"
    d.mkdir()
    for f in (ws.data / "proposals").iterdir():
        raw = f.read_bytes()
        (d / f.name).write_bytes(raw[:20] + BAD_BYTES + raw[20:] if f.stem == ws.te else raw)
    p = ws.run("eval-proposals", "--gt", ws.annotations, "--proposals", d, "--subset", "Test")
    return refused(p, f"{ws.te}.csv", "byte 20")


@case("bad data")
def not_utf8_proposals_json(ws):
    d = ws.fresh("utf8_pjson")
    (d / "p.json").write_bytes(b'{"results": {"' + BAD_BYTES + b'": []}}')
    p = ws.run("eval-proposals", "--gt", ws.annotations, "--proposals", d / "p.json", "--subset", "Test")
    return refused(p, "p.json", "byte 14")


def _thumos_dir(ws: Workspace, name: str, bad: bytes = b"") -> os.PathLike:
    d = ws.fresh(name) / "annotation"
    d.mkdir()
    (d / "Jump_test.txt").write_bytes(b"video_test_0000004 2.0 5.0\n" + bad)
    (d / "Run_test.txt").write_bytes(b"video_test_0000004 7.0 9.0\n")
    return d


@case("bad data", quick=True)
def not_utf8_thumos_txt(ws):
    d = _thumos_dir(ws, "utf8_thumos", BAD_BYTES + b" 1.0 2.0\n")
    return refused(ws.run("convert", "thumos14", d, "--out", d.parent / "out.json"), "Jump_test.txt", "byte 27")


@case("bad data")
def not_utf8_durations(ws):
    d = _thumos_dir(ws, "utf8_durations")
    (d.parent / "durations.txt").write_bytes(b"video_test_0000004.mp4\n" + BAD_BYTES + b"\n")
    p = ws.run("convert", "thumos14", d, "--out", d.parent / "out.json", "--durations", d.parent / "durations.txt")
    return refused(p, "durations.txt", "byte 23")


@case("bad data")
def not_utf8_avoid_list(ws):
    d = ws.fresh("utf8_avoid")
    (d / "avoid.txt").write_bytes(b"video_x\n" + BAD_BYTES + b"\n")
    return refused(_eval(ws, ws.annotations, None, "--avoid", d / "avoid.txt"), "avoid.txt", "byte 8")


# ---------------------------------------------------------------- bad use: outputs that are inputs


def _out_is_input(ws: Workspace, victim, run) -> object:
    before = victim.read_bytes()
    return unchanged(victim, before, refused(run()))


@case("bad use")
def infer_out_is_the_annotations(ws):
    d = ws.fresh("out_ann")
    gt = d / "gt.json"
    gt.write_bytes(ws.annotations.read_bytes())
    return _out_is_input(ws, gt, lambda: ws.run("infer", ws.cfg, "--checkpoint", ws.checkpoint, "--out", gt,
                                                "--set", f"data.annotations={gt}", "--quiet"))


@case("bad use")
def infer_out_is_the_checkpoint(ws):
    ckpt = ws.fresh("out_ckpt") / "last.pt"
    ckpt.write_bytes(ws.checkpoint.read_bytes())
    return _out_is_input(ws, ckpt, lambda: ws.run("infer", ws.cfg, "--checkpoint", ckpt, "--out", ckpt, "--quiet"))


@case("bad use")
def infer_out_is_a_feature_file(ws):
    feats = ws.features_with("out_feat", ws.te, ws.features_of(ws.te))
    f = feats / f"{ws.te}.npy"
    return _out_is_input(ws, f, lambda: _infer_to(ws, f, f"data.features={feats}"))


def _infer_to(ws: Workspace, out, *sets):
    return ws.run("infer", ws.cfg, "--checkpoint", ws.checkpoint, "--out", out, "--quiet", "--set", *sets)


@case("bad use", quick=True)
def infer_out_is_the_annotations_through_a_link(ws):
    d = ws.fresh("out_link")
    gt = d / "gt.json"
    gt.write_bytes(ws.annotations.read_bytes())
    os.symlink(gt, d / "link.json")
    return _out_is_input(ws, gt, lambda: _infer_to(ws, d / "link.json", f"data.annotations={gt}"))


@case("bad use")
def eval_json_is_the_ground_truth(ws):
    gt = ws.fresh("eval_gt") / "gt.json"
    gt.write_bytes(ws.annotations.read_bytes())
    return _out_is_input(ws, gt, lambda: _eval(ws, gt, None, "--json", gt))


@case("bad use", quick=True)
def eval_json_is_the_results(ws):
    pred = ws.fresh("eval_pred") / "pred.json"
    pred.write_bytes(ws.results.read_bytes())
    return _out_is_input(ws, pred, lambda: _eval(ws, ws.annotations, pred, "--json", pred))


@case("bad use")
def convert_out_is_its_input(ws):
    d = _thumos_dir(ws, "convert_self")
    return _out_is_input(ws, d / "Jump_test.txt",
                         lambda: ws.run("convert", "thumos14", d, "--out", d / "Jump_test.txt"))


@case("bad use", quick=True)
def train_into_a_finished_work_dir(ws):
    work = copy_tree(ws.root / "w", ws.fresh("finished") / "w")
    ckpt = work / "checkpoints" / "last.pt"
    return _out_is_input(ws, ckpt, lambda: ws.run("train", ws.cfg, "--work-dir", work, "--quiet"))


@case("bad use")
def ablate_reuses_runs_of_other_settings(ws):
    out = ws.fresh("ablate") / "a"
    first = ws.run("ablate", ws.cfg, "--out", out, "--variants", "dnet")
    if first.rc != 0:
        return succeeded(first)
    p = ws.run("ablate", ws.cfg, "--out", out, "--variants", "dnet", "--set", "model.hidden_dim=4")
    if p.rc == 2:
        return refused(p)

    def check():
        stored = [f for f in out.rglob("config.yaml") if "hidden_dim: 4" in f.read_text()]
        return None if stored else "the old runs (hidden_dim 8) were reused for hidden_dim 4"
    return succeeded(p, check)


# ---------------------------------------------------------------- bad use: settings


def _train_set(ws: Workspace, name: str, *sets: str):
    return ws.run("train", ws.cfg, "--work-dir", ws.fresh(name) / "w", "--quiet", "--set", *sets)


@case("bad use")
def set_on_a_dict_key_merges(ws):
    d = ws.fresh("merge")
    p = ws.run("train", ws.cfg, "--work-dir", d / "w", "--quiet", "--set", "infer.stream_weights={rgb: 5, flow: 6}",
               "infer.stream_weights.rgb=2")

    def check():
        weights = __import__("yaml").safe_load((d / "w" / "config.yaml").read_text())["infer"]["stream_weights"]
        return None if weights == {"rgb": 2.0, "flow": 6.0} else f"infer.stream_weights became {weights}"
    return succeeded(p, check)


@case("bad use")
def visualize_negative_instances(ws):
    d = ws.fresh("viz")
    p = ws.run("visualize", ws.cfg, "--checkpoint", ws.checkpoint, "--video", ws.te, "--out", d / "v",
               "--instances", "-1")
    return refused(p, "--instances")


BAD_SETTINGS = {  # name: (--set, the key the error must name)
    "streams_empty": ("data.streams={}", "data.streams"),
    "seed_23_digits": ("train.seed=12345678901234567890123", "train.seed"),
    "threads_100000": ("train.threads=100000", "train.threads"),
    "stream_weight_nan": ("infer.stream_weights={rgb: .nan, flow: 6}", "infer.stream_weights.rgb"),
    "stream_weight_on_held_out": ("infer.stream_weights.rgb=2", "infer.stream_weights is 'held_out'"),
    "fps_inf": ("data.fps=.inf", "data.fps"),
    "fg_iou_nan": ("train.fg_iou=.nan", "train.fg_iou"),
}


def _bad_setting(name: str, quick: bool):
    setting, key = BAD_SETTINGS[name]

    def run(ws):
        return refused(_train_set(ws, name, setting), key)
    run.__name__ = f"setting_{name}"
    case("bad use", quick=quick)(run)


for _name in BAD_SETTINGS:
    _bad_setting(_name, quick=_name in ("streams_empty", "threads_100000", "stream_weight_nan"))


@case("bad use")
def control_valid_run(ws):
    """A valid infer succeeds (the suite must not call every run a failure)."""
    p, out = _infer(ws, ws.fresh("valid"))
    return succeeded(p, lambda: None if out.read_bytes() == ws.results.read_bytes() else "results differ") \
        if p.rc == 0 else succeeded(p)

