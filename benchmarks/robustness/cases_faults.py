"""Faults: SIGKILL at random points of train, infer, propose and ablate, then a rerun (or
``--resume``), a full disk, two runs at once, a diverging training (NaN loss), a bit flipped in a
checkpoint."""
from __future__ import annotations

import json
import random
import signal
import time

from faults import file_size_limit, flip_tensor_bit  # tests/faults.py (run.py puts tests/ on the path)
from harness import (CLEAN, DATA_LOSS, SILENT, Outcome, Proc, Workspace, abnormal, copy_tree, refused, succeeded,
                     unchanged)
from registry import case

KILLS_QUICK, KILLS_FULL = 1, 3  # random kill points a command
EPOCHS = 3


def _partial_files(d) -> list[str]:
    """Temporary files of killed writes still there (after a rerun that wrote beside them)."""
    return sorted(str(f.relative_to(d)) for f in d.rglob("*") if f.name.endswith(".tmp") or f.name.startswith(".tmp"))


def _reference(ws: Workspace, kind: str):
    """(seconds, results bytes) of one uninterrupted run of ``kind`` (train+infer or propose), made once."""
    cache = getattr(ws, "_refs", None)
    if cache is None:
        cache = ws._refs = {}
    if kind not in cache:
        d = ws.fresh(f"ref_{kind}")
        t0 = time.monotonic()
        if kind == "train":
            p = ws.run("train", ws.cfg, "--work-dir", d / "w", "--quiet", "--set", f"train.epochs={EPOCHS}")
            seconds = time.monotonic() - t0
            ws.must(p)
            ws.must(ws.run("infer", ws.cfg, "--checkpoint", d / "w/checkpoints/last.pt", "--out", d / "r.json",
                           "--quiet"))
            cache[kind] = (seconds, (d / "r.json").read_bytes())
        elif kind == "ablate":
            ws.must(ws.run(*_argv(ws, kind, d / "a")))
            cache[kind] = (time.monotonic() - t0, _study_tables(d / "a"))
        else:
            argv = _argv(ws, kind, d / "r.json")
            ws.must(ws.run(*argv))
            cache[kind] = (time.monotonic() - t0, (d / "r.json").read_bytes())
    return cache[kind]


def _study_tables(out) -> str:
    """The study's figures (ablations.json's tables; its run records hold wall times)."""
    return json.dumps(json.loads((out / "ablations.json").read_text())["tables"], sort_keys=True)


def _proposal_checkpoint(ws: Workspace):
    if not hasattr(ws, "_bmn"):
        d = ws.fresh("bmn")
        ws.must(ws.run("train", ws.cfg, "--work-dir", d / "w", "--quiet", "--set", "model.kind=proposals",
                       "proposals.temporal_scale=32", "proposals.max_duration=16", "proposals.hidden_1d=8",
                       "proposals.hidden_3d=8", "proposals.hidden_2d=8", "proposals.num_samples=4",
                       "proposals.samples_per_bin=1", "proposals.max_proposals=20"))
        ws._bmn = d / "w" / "checkpoints" / "last.pt"
    return ws._bmn


def _argv(ws: Workspace, kind: str, out) -> list:
    if kind == "ablate":  # out: the study's directory; two variants, so a kill can fall between runs
        return ["ablate", ws.cfg, "--out", out, "--variants", "dnet", "baseline", "--set", f"train.epochs={EPOCHS}"]
    if kind == "infer":
        return ["infer", ws.cfg, "--checkpoint", ws.checkpoint, "--out", out, "--quiet"]
    ckpt = _proposal_checkpoint(ws)
    return ["propose", ws.cfg, "--checkpoint", ckpt, "--out", out, "--quiet", "--set", "model.kind=proposals"]


def _killed(ws: Workspace, argv, seconds: float, seed: int) -> float:
    """Start ``argv``, SIGKILL it at a random point of its usual ``seconds``; the delay."""
    delay = random.Random(seed).uniform(0.3, max(0.5, seconds))
    proc = ws.popen(*argv)
    try:
        proc.wait(timeout=delay)
    except Exception:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return delay


def _train_killed(ws: Workspace, seed: int) -> Outcome:
    seconds, expected = _reference(ws, "train")
    d = ws.fresh(f"kill_train_{seed}")
    work = d / "w"
    argv = ["train", ws.cfg, "--work-dir", work, "--quiet", "--set", f"train.epochs={EPOCHS}"]
    delay = _killed(ws, argv, seconds, seed)
    resume = ["--resume"] if (work / "checkpoints" / "last.pt").exists() else []
    p = ws.run(*argv, *resume)
    if p.rc != 0:
        return abnormal(p) or Outcome(SILENT, f"rerun after a kill at {delay:.1f} s refused: {p.err.strip()[-120:]}")
    ws.must(ws.run("infer", ws.cfg, "--checkpoint", work / "checkpoints/last.pt", "--out", d / "r.json", "--quiet"))
    if (d / "r.json").read_bytes() != expected:
        return Outcome(SILENT, f"killed at {delay:.1f} s, resumed: results differ from an uninterrupted run")
    left = _partial_files(work)
    return Outcome(SILENT, f"partial files left: {left[:2]}") if left else Outcome(CLEAN)


def _command_killed(ws: Workspace, kind: str, seed: int) -> Outcome:
    seconds, expected = _reference(ws, kind)
    d = ws.fresh(f"kill_{kind}_{seed}")
    out = d / "r.json"
    delay = _killed(ws, _argv(ws, kind, out), seconds, seed)
    if out.exists():
        try:
            json.loads(out.read_bytes())
        except ValueError:
            return Outcome(DATA_LOSS, f"killed at {delay:.1f} s: a truncated {out.name}")
    p = ws.run(*_argv(ws, kind, out))
    outcome = succeeded(p, lambda: None if out.read_bytes() == expected else "rerun's results differ")
    left = _partial_files(d)
    return Outcome(SILENT, f"partial files left: {left[:2]}") if outcome.kind == CLEAN and left else outcome


def _ablate_killed(ws: Workspace, seed: int) -> Outcome:
    seconds, expected = _reference(ws, "ablate")
    d = ws.fresh(f"kill_ablate_{seed}")
    delay = _killed(ws, _argv(ws, "ablate", d / "a"), seconds, seed)
    p = ws.run(*_argv(ws, "ablate", d / "a"))  # a rerun resumes the study: finished runs kept, a killed one resumed
    outcome = succeeded(p, lambda: None if _study_tables(d / "a") == expected
                        else f"killed at {delay:.1f} s, rerun: the study's figures differ from an uninterrupted one")
    left = _partial_files(d)
    return Outcome(SILENT, f"partial files left: {left[:2]}") if outcome.kind == CLEAN and left else outcome


def _register_kills(quick_count: int, full_count: int) -> None:
    for i in range(full_count):
        for kind in ("train", "infer", "propose", "ablate"):
            def run(ws, kind=kind, i=i):
                if kind == "ablate":
                    return _ablate_killed(ws, i)
                return _train_killed(ws, i) if kind == "train" else _command_killed(ws, kind, i)
            run.__name__ = f"sigkill_{kind}_{i}"
            case("faults", quick=i < quick_count and kind == "infer")(run)


_register_kills(KILLS_QUICK, KILLS_FULL)


@case("faults", quick=True)
def full_disk_infer(ws):
    out = ws.fresh("full_infer") / "r.json"
    old = b'{"results": {}, "note": "an earlier run"}'
    out.write_bytes(old)
    p = ws.run("infer", ws.cfg, "--checkpoint", ws.checkpoint, "--out", out, "--quiet",
               preexec=file_size_limit(len(ws.results.read_bytes()) // 2))
    return unchanged(out, old, refused(p, "r.json"))


@case("faults")
def full_disk_train(ws):
    work = ws.fresh("full_train") / "w"
    p = ws.run("train", ws.cfg, "--work-dir", work, "--quiet",
               preexec=file_size_limit(ws.checkpoint.stat().st_size // 2))
    return refused(p, "w")


@case("faults")
def two_trains_into_one_work_dir(ws):
    work = ws.fresh("concurrent") / "w"
    argv = ["train", ws.cfg, "--work-dir", work, "--quiet", "--set", "train.epochs=2"]
    procs = [ws.popen(*argv), ws.popen(*argv)]
    results = [Proc([], p.wait(), "", p.stderr.read()) for p in procs]
    for r in results:
        bad = abnormal(r)
        if bad:
            return bad
    codes = sorted(r.rc for r in results)
    if codes == [0, 2]:
        return refused(next(r for r in results if r.rc == 2))
    if codes == [0, 0]:
        return Outcome(DATA_LOSS, "both runs exit 0 in one work dir (no lock): last.pt and best.pt may mix")
    return Outcome(SILENT, f"exit codes {codes}")


@case("faults")
def non_finite_loss_in_train(ws):
    """lr 1e30 on a resumed run: the first NaN loss stops it with one line; last.pt stays a finite epoch."""
    work = copy_tree(ws.root / "w", ws.fresh("nan_loss") / "w")
    p = ws.run("train", ws.cfg, "--work-dir", work, "--quiet", "--resume", "--set", "train.epochs=6",
               "train.lr=1.0e+30", "train.warmup_epochs=0")
    outcome = refused(p, "training stopped")
    if outcome.kind != CLEAN:
        return outcome
    check = ws.run("infer", ws.cfg, "--checkpoint", work / "checkpoints" / "last.pt", "--out", work / "r.json",
                   "--quiet")
    return succeeded(check, lambda: None if json.loads((work / "r.json").read_text())["results"]
                     else "last.pt after the stop detects nothing (NaN weights?)")


@case("faults", quick=True)
def bit_flipped_checkpoint_infer(ws):
    d = ws.fresh("bitflip")
    ckpt = flip_tensor_bit(ws.checkpoint, d / "flipped.pt")
    return refused(ws.run("infer", ws.cfg, "--checkpoint", ckpt, "--out", d / "r.json", "--quiet"), "flipped.pt")


@case("faults")
def bit_flipped_checkpoint_resume(ws):
    work = copy_tree(ws.root / "w", ws.fresh("bitflip_resume") / "w")
    last = work / "checkpoints" / "last.pt"
    flip_tensor_bit(last, last)
    return refused(ws.run("train", ws.cfg, "--work-dir", work, "--quiet", "--resume", "--set", "train.epochs=2"),
                   "last.pt")
