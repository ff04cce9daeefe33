"""Where the compiled kernel is kept and how a failed build is handled (no real compiler needed)."""
import os
import pwd

import pytest

from dcltal.ops import native


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """library() rebuilt from nothing, the system's temporary directory inside tmp_path."""
    monkeypatch.setattr(native.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    native.library.cache_clear()
    yield
    native.library.cache_clear()


def _fake_compiler(tmp_path, body):
    """An executable that logs each run to tmp_path/runs, then runs ``body``."""
    script = tmp_path / "cc.sh"
    script.write_text(f"#!/bin/sh\necho run >> {tmp_path / 'runs'}\n{body}\n")
    script.chmod(0o755)
    return str(script)


def _runs(tmp_path):
    return len((tmp_path / "runs").read_text().splitlines()) if (tmp_path / "runs").exists() else 0


def test_no_home_falls_back_to_a_private_temporary_directory(monkeypatch, tmp_path, fresh_library):
    for var in ("HOME", "DCLTAL_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: (_ for _ in ()).throw(KeyError(uid)))
    with pytest.warns(RuntimeWarning, match="no home directory.*DCLTAL_CACHE_DIR"):
        where = native.cache_dir("region_pool-x.so")
    assert where == tmp_path / "tmp" / f"dcltal-cache-{os.getuid()}"
    assert where.is_dir() and where.stat().st_mode & 0o777 == 0o700


def test_unwritable_cache_falls_back_with_one_warning(monkeypatch, tmp_path, fresh_library):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("DCLTAL_CACHE_DIR", str(tmp_path / "a-file" / "cache"))  # cannot be created
    monkeypatch.setenv("CC", _fake_compiler(tmp_path, "exit 1"))
    with pytest.warns(RuntimeWarning) as caught:
        assert native.library() is None
    messages = [str(w.message) for w in caught]
    assert sum("is not writable" in m and "DCLTAL_CACHE_DIR" in m for m in messages) == 1
    assert list((tmp_path / "tmp" / f"dcltal-cache-{os.getuid()}").glob("*.failed"))  # built there


def test_a_read_only_cache_that_holds_the_kernel_is_used(monkeypatch, tmp_path):
    (tmp_path / "region_pool-x.so").write_text("")
    monkeypatch.setenv("DCLTAL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native.os, "access", lambda path, mode: False)
    assert native.cache_dir("region_pool-x.so") == tmp_path


def test_a_failed_build_is_remembered_until_its_marker_is_deleted(monkeypatch, tmp_path, fresh_library):
    monkeypatch.setenv("DCLTAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", _fake_compiler(tmp_path, "echo 'error: no good' >&2; exit 1"))
    with pytest.warns(RuntimeWarning, match="could not build.*error: no good"):
        assert native.library() is None
    tried = _runs(tmp_path)
    [marker] = (tmp_path / "cache").glob("*.failed")
    native.library.cache_clear()  # a later process
    with pytest.warns(RuntimeWarning, match=f"earlier build .* failed .*delete {marker}"):
        assert native.library() is None
    assert _runs(tmp_path) == tried  # not retried
    marker.unlink()
    native.library.cache_clear()
    with pytest.warns(RuntimeWarning, match="could not build"):
        native.library()
    assert _runs(tmp_path) == 2 * tried


def test_the_compiler_runs_with_a_timeout(monkeypatch, tmp_path, fresh_library):
    monkeypatch.setenv("DCLTAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", _fake_compiler(tmp_path, "exec sleep 30"))
    monkeypatch.setattr(native, "COMPILE_TIMEOUT_S", 1)
    with pytest.warns(RuntimeWarning, match="ran past 1 s"):
        assert native.library() is None
    assert list((tmp_path / "cache").glob("*.failed"))
