"""What the reliability suite's cases share: the workspace (tiny synthetic data, a config, a trained
checkpoint, its results), running the real ``dcltal`` in a subprocess, and judging what came back.

Outcomes (issue 16): ``clean`` (exit 2 and one error line, or a correct success), ``traceback``,
``silent wrong result``, ``data loss``, ``code execution``, ``crash`` (a signal, or an exit code that
is neither 0 nor 2).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

CLEAN, TRACEBACK, SILENT, DATA_LOSS, CODE_EXEC, CRASH = (
    "clean", "traceback", "silent wrong result", "data loss", "code execution", "crash")
FAILURES = (TRACEBACK, SILENT, DATA_LOSS, CODE_EXEC, CRASH)
DIM = 8  # feature width of one stream


@dataclass
class Proc:
    argv: list[str]
    rc: int
    out: str
    err: str


@dataclass
class Outcome:
    kind: str
    detail: str = ""


def command(*argv) -> list[str]:
    return [sys.executable, "-m", "dcltal", *map(str, argv)]


class Workspace:
    """A temp folder with ``synth`` data, ``cfg.yaml`` over it, a trained checkpoint and its results.

    Every ``dcltal`` run gets ``DCLTAL_CACHE_DIR`` inside the workspace, so a planted kernel never
    reaches the user's cache.
    """

    def __init__(self, root: Path, quick: bool) -> None:
        self.root, self.quick = root, quick
        self.cache = root / "kernel-cache"
        self.env = {**os.environ, "DCLTAL_CACHE_DIR": str(self.cache), "PYTHONWARNINGS": "ignore",
                    "DCLTAL_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
        self._counter = 0

    # ------------------------------------------------------------------ running

    def run(self, *argv, timeout: float = 240, preexec=None, cwd: Path | None = None) -> Proc:
        cmd = command(*argv)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=self.env,
                               timeout=timeout, preexec_fn=preexec, cwd=cwd or self.root)
        except subprocess.TimeoutExpired as e:
            return Proc(cmd, -signal.SIGKILL, "", f"timed out after {timeout} s: {e}")
        return Proc(cmd, p.returncode, p.stdout, p.stderr)

    def popen(self, *argv, **kw) -> subprocess.Popen:
        return subprocess.Popen(command(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                errors="replace", env=self.env, cwd=self.root, **kw)

    def fresh(self, name: str) -> Path:
        """A new, empty folder for one case."""
        self._counter += 1
        d = self.root / "cases" / f"{self._counter:03d}-{name}"
        d.mkdir(parents=True)
        return d

    # ------------------------------------------------------------------ the shared data

    def setup(self) -> None:
        r = self.root
        train, test = (4, 2) if self.quick else (6, 3)
        self.must(self.run("synth", r / "s", "--videos-train", train, "--videos-test", test, "--classes", 2,
                           "--dim", DIM))
        self.data = r / "s"
        self.annotations = self.data / "annotations.json"
        db = json.loads(self.annotations.read_text())["database"]
        self.test_ids = [v for v, e in db.items() if e["subset"] == "Test"]
        self.te = self.test_ids[0]
        self.config = {
            "data": {"annotations": str(self.annotations), "features": str(self.data / "features"),
                     "proposals": str(self.data / "proposals"), "classes": str(self.data / "classes.txt"),
                     "streams": {"rgb": [0, DIM], "flow": [DIM, 2 * DIM]}},
            "model": {"hidden_dim": 8, "num_classes": 2, "cls_hidden": 16, "loc_hidden": 16},
            "train": {"epochs": 1, "device": "cpu", "threads": 1, "videos_per_batch": 2},
            "infer": {"video_scores": None},
        }
        self.cfg = self.write_config(r / "cfg.yaml", self.config)
        self.must(self.run("train", self.cfg, "--work-dir", r / "w", "--quiet"))
        self.checkpoint = r / "w" / "checkpoints" / "last.pt"
        self.results = r / "results.json"
        self.must(self.run("infer", self.cfg, "--checkpoint", self.checkpoint, "--out", self.results, "--quiet"))

    def must(self, p: Proc) -> Proc:
        if p.rc != 0:
            raise SystemExit(f"setup step failed ({p.rc}): {' '.join(p.argv)}\n{p.err}")
        return p

    def write_config(self, path: Path, config: dict) -> Path:
        path.write_text(yaml.safe_dump(config))
        return path

    def features_with(self, name: str, vid: str, arr) -> Path:
        """A copy of the feature folder (links) whose ``vid`` file is ``arr`` (an array, or bytes for a raw file
        under the name ``vid`` + its own suffix)."""
        d = self.fresh(name) / "features"
        d.mkdir()
        for f in (self.data / "features").iterdir():
            if f.stem != vid:
                os.symlink(f, d / f.name)
        if isinstance(arr, tuple):  # (suffix, bytes)
            (d / f"{vid}{arr[0]}").write_bytes(arr[1])
        else:
            np.save(d / f"{vid}.npy", arr, allow_pickle=False)
        return d

    def features_of(self, vid: str) -> np.ndarray:
        return np.load(self.data / "features" / f"{vid}.npy")


# ---------------------------------------------------------------------- judging


def _error_lines(err: str) -> tuple[list[str], list[str]]:
    lines = err.strip().splitlines()
    return lines, [line for line in lines if line.startswith("dcltal: error:")]


def _last(err: str) -> str:
    lines = err.strip().splitlines()
    return lines[-1][:160] if lines else ""


def abnormal(p: Proc) -> Outcome | None:
    """A traceback or a crash, whatever the case expected; None when the run ended normally."""
    if "Traceback (most recent call last)" in p.err:
        return Outcome(TRACEBACK, _last(p.err))
    if p.rc < 0:
        return Outcome(CRASH, f"signal {-p.rc}: {_last(p.err)}")
    if p.rc not in (0, 2):
        return Outcome(CRASH, f"exit {p.rc}: {_last(p.err)}")
    return None


def refused(p: Proc, *names: str) -> Outcome:
    """The case is a mistake: exit 2 and one error line (naming each of ``names``) is clean."""
    bad = abnormal(p)
    if bad:
        return bad
    if p.rc == 0:
        return Outcome(SILENT, "accepted without a word")
    lines, errors = _error_lines(p.err)
    if len(errors) != 1 or lines[-1] != errors[0]:
        return Outcome(TRACEBACK, f"error not one line: {_last(p.err)}")
    missing = [n for n in names if n not in errors[0]]
    if missing:
        return Outcome(SILENT, f"error does not name {missing}: {errors[0][:120]}")
    return Outcome(CLEAN)


def refused_or_warned(p: Proc, words: str, *names: str) -> Outcome:
    """A repairable case: exit 2 with one line, or success with a counted warning holding ``words``."""
    if p.rc == 0 and not abnormal(p):
        if any(line.startswith("warning") and words in line for line in p.err.splitlines()):
            return Outcome(CLEAN)
        return Outcome(SILENT, f"no warning with {words!r}")
    return refused(p, *names)


def succeeded(p: Proc, check=None) -> Outcome:
    """The case must succeed; ``check()`` returns a reason the result is wrong, or None."""
    bad = abnormal(p)
    if bad:
        return bad
    if p.rc != 0:
        return Outcome(SILENT, f"refused a valid run: {_last(p.err)}")
    why = check() if check else None
    return Outcome(SILENT, why) if why else Outcome(CLEAN)


def unchanged(path: Path, before: bytes, outcome: Outcome) -> Outcome:
    """Data loss trumps everything else: ``path`` must still hold ``before``."""
    if not path.exists() or path.read_bytes() != before:
        return Outcome(DATA_LOSS, f"{path.name} overwritten ({outcome.kind}{': ' + outcome.detail if outcome.detail else ''})")
    return outcome


def wait_for(path: Path, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst
