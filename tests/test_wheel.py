"""The wheel holds what an installed dcltal reads at run time: the configs, the kernel's C source, py.typed."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_the_wheel_holds_configs_kernel_source_types_and_license(tmp_path):
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (the build backend)")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "--wheel-dir", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    if run.returncode != 0 and "No module named pip" in run.stderr:
        pytest.skip("pip is not installed: it drives the wheel build")
    assert run.returncode == 0, run.stderr
    [wheel] = tmp_path.glob("dcltal-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {p.name for p in (ROOT / "dcltal" / "configs").glob("*.yaml")}
    assert configs and {f"dcltal/configs/{c}" for c in configs} <= names
    assert "dcltal/ops/native/region_pool.c" in names and "dcltal/py.typed" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata and any(n.endswith("licenses/LICENSE") for n in names)
