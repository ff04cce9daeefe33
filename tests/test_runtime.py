"""The dcltal command's process settings (dcltal/runtime.py): applied before torch loads, and a user's
own OpenMP setting kept."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = """
import os, sys
from dcltal.runtime import tune_process
assert "torch" not in sys.modules
tune_process()
tune_process()  # twice is harmless
print(os.environ["GOMP_SPINCOUNT"])
"""


@pytest.mark.parametrize("user_value, expected", [(None, "3000"), ("123", "123")])
def test_spin_count_set_before_torch_unless_the_user_chose(user_value, expected):
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if user_value is not None:
        env["GOMP_SPINCOUNT"] = user_value
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [expected]


def test_the_command_imports_no_torch_before_tuning():
    """`dcltal.cli` (what the console script loads first) must not import torch at module level, or the
    spin count would be read before it is set."""
    code = "import sys, dcltal.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
