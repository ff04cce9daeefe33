"""Where the compiled kernel is kept, how a failed build is handled, and that a library planted in the
cache is never loaded (fake compilers; the planted libraries are two small C files built once)."""
import hashlib
import os
import pwd
import shutil
import subprocess
import warnings

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


STUB = "int region_pool_f32(void) { return 0; }\nint region_pool_f64(void) { return 0; }\n"
# a library whose constructor leaves a mark: loading it at all is the harm
PLANTED = STUB + ("#include <stdio.h>\n#include <stdlib.h>\n__attribute__((constructor)) static void planted(void) {\n"
                  "    FILE *f = fopen(getenv(\"PLANTED_MARK\"), \"w\"); if (f) fclose(f);\n}\n")


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    """{"stub": a library with the kernel's symbols, "planted": the same with a constructor}."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build the planted library")
    where, built = tmp_path_factory.mktemp("libs"), {}
    for name, code in (("stub", STUB), ("planted", PLANTED)):
        (where / f"{name}.c").write_text(code)
        subprocess.run([cc, "-shared", "-fPIC", str(where / f"{name}.c"), "-o", str(where / f"{name}.so")], check=True)
        built[name] = where / f"{name}.so"
    return built


@pytest.fixture
def planting(monkeypatch, tmp_path, fresh_library, libraries):
    """A fake compiler that "builds" the stub; PLANTED_MARK names the file the planted library would make."""
    monkeypatch.setenv("CC", _fake_compiler(tmp_path, 'while [ $# -gt 1 ]; do [ "$1" = -o ] && out="$2"; shift; done\n'
                                            f'cp {libraries["stub"]} "$out"'))
    monkeypatch.setenv("PLANTED_MARK", str(tmp_path / "planted-ran"))
    return libraries


def _plant(cache, library, record):
    """Put ``library`` where library() looks for its kernel in ``cache`` (a process that loaded a path
    before would get that one back from the dynamic loader, so nothing is built here first), with a
    sidecar: none, a wrong digest, or the right one."""
    cache.mkdir(mode=0o700, exist_ok=True)
    path = cache / native._library_name(os.environ["CC"])
    shutil.copyfile(library, path)
    if record is not None:
        path.with_name(path.name + ".sha256").write_text((_sha256(path) if record == "true" else "0" * 64) + "\n")
    return path


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("record, mode", [(None, 0o700), ("forged", 0o700), ("true", 0o775)])
def test_a_planted_library_is_rebuilt_not_loaded(monkeypatch, tmp_path, planting, record, mode):
    """No record of its build, a record that does not match, or a true one on a file others may write."""
    monkeypatch.setenv("DCLTAL_CACHE_DIR", str(tmp_path / "cache"))
    lib = _plant(tmp_path / "cache", planting["planted"], record)
    lib.chmod(mode)
    with pytest.warns(RuntimeWarning) as caught:
        assert native.library() is not None
    assert len(caught) == 1 and "rebuilt, the cached one not loaded" in str(caught[0].message)
    assert not (tmp_path / "planted-ran").exists() and _runs(tmp_path) == 1
    assert lib.read_bytes() == planting["stub"].read_bytes()
    assert lib.with_name(lib.name + ".sha256").read_text().strip() == _sha256(lib)
    native.library.cache_clear()  # a later process loads the rebuilt one without a word
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.library() is not None
    assert _runs(tmp_path) == 1


def test_a_world_writable_cache_is_passed_over(monkeypatch, tmp_path, planting):
    monkeypatch.setenv("DCLTAL_CACHE_DIR", str(tmp_path / "shared"))
    _plant(tmp_path / "shared", planting["planted"], "true")  # anyone may write a matching record there
    (tmp_path / "shared").chmod(0o777)
    with pytest.warns(RuntimeWarning) as caught:
        assert native.library() is not None
    assert len(caught) == 1 and "writable by group or others" in str(caught[0].message)
    assert not (tmp_path / "planted-ran").exists() and _runs(tmp_path) == 1
    [built] = (tmp_path / "tmp" / f"dcltal-cache-{os.getuid()}").glob("*.so")  # the private directory's
    assert built.read_bytes() == planting["stub"].read_bytes()


def test_a_cache_of_another_user_falls_back_to_torch(monkeypatch, tmp_path, planting):
    monkeypatch.setenv("DCLTAL_CACHE_DIR", str(tmp_path / "cache"))
    _plant(tmp_path / "cache", planting["planted"], "true")
    uid = os.getuid()
    monkeypatch.setattr(native.os, "getuid", lambda: uid + 1)  # everything here is someone else's
    with pytest.warns(RuntimeWarning) as caught:
        assert native.library() is None
    assert len(caught) == 1 and "owned by another user" in str(caught[0].message)
    assert not (tmp_path / "planted-ran").exists() and _runs(tmp_path) == 0
