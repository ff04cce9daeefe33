"""The aggregation's region pooling without autograd on the CPU (Eq. 6-8 and Eq. 10's mean), as one
compiled pass over each region's snippets (``region_pool.c`` beside this file); callers go through
:func:`dcltal.ops.pooling.pool_regions`, which picks this or torch.

torch computes the same numbers with a sparse table and batched products over tiles of regions
(:mod:`dcltal.ops.pooling`); those small products and gathers ran at a tenth of the machine's speed
and took about a third of the model's inference time. The C source is compiled on first use by the
system's C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) for this CPU, kept in
``$DCLTAL_CACHE_DIR`` (default ``~/.cache/dcltal``) under a name that hashes the source, the compiler,
the flags and the CPU, and loaded with ctypes. Where that directory cannot be had (no home directory,
a read-only file system) a private directory under the system's temporary directory takes its place,
with one warning. A build that fails leaves a ``.failed`` marker of the same name, so later processes
do not try again; deleting the marker retries. Without a compiler, after a failed build, or with
``DCLTAL_NATIVE=0``, the torch path runs instead (same numbers, slower), with one warning where a
compiler was wanted.

Loading a library runs its code, and anyone can compute the file's name, so a library is loaded only
when the cache directory, the file and its ``.sha256`` sidecar (the digest recorded by the build, by
this or an earlier process) are this user's own and writable by no one else, and the file's sha256 is
the recorded one. A cache directory that fails this is passed over for the private one; a file that
fails it is rebuilt; either with one warning.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from dcltal.io import atomic_path, write_text

SOURCE = Path(__file__).with_name("region_pool.c")
# -ffast-math's reassociation (vectorised sums) without the rest: linked with -ffast-math, a shared
# library sets the CPU's flush-to-zero mode for the whole process when it loads
FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fno-signed-zeros", "-fassociative-math",
         "-freciprocal-math", "-ffp-contract=fast", "-shared", "-fPIC"]
CPU_FLAGS = ["-march=native"]  # dropped where the compiler does not take it
FUNCTIONS = {torch.float32: ("region_pool_f32", ctypes.c_float), torch.float64: ("region_pool_f64", ctypes.c_double)}


COMPILE_TIMEOUT_S = 120


def _wanted_cache_dir() -> Path:
    if os.environ.get("DCLTAL_CACHE_DIR"):
        return Path(os.environ["DCLTAL_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dcltal"


def _writable(d: Path) -> bool:
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(d, os.W_OK | os.X_OK)


def _not_own(path: Path, directory: bool = False) -> str | None:
    """Why ``path`` is not this user's own (None where it is): missing, not a directory or not a
    regular file (a link is not followed), owned by another user, or writable by group or others."""
    try:
        st = os.stat(path) if directory else os.lstat(path)
    except FileNotFoundError:
        return f"{path} is missing"
    if not (stat.S_ISDIR if directory else stat.S_ISREG)(st.st_mode):
        return f"{path} is not a {'directory' if directory else 'regular file'}"
    if st.st_uid != os.getuid():
        return f"{path} is owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def cache_dir(name: str) -> Path:
    """The directory that holds (or will hold) the file ``name``: the wanted cache where it holds
    the file or can be written and is this user's own (:func:`_not_own`), else a private directory
    under the system's temporary directory (one warning naming DCLTAL_CACHE_DIR). OSError where the
    private directory is not this user's own either."""
    try:
        wanted: Path | None = _wanted_cache_dir()
    except RuntimeError:  # no HOME and no password entry for this uid
        wanted = None
    if wanted is None:
        why = "no home directory"
    elif (wanted / name).exists() or _writable(wanted):
        why = _not_own(wanted, directory=True)
        if why is None:
            return wanted
    else:
        why = f"{wanted} is not writable"
    fallback = Path(tempfile.gettempdir()) / f"dcltal-cache-{os.getuid()}"
    fallback.mkdir(mode=0o700, exist_ok=True)
    problem = _not_own(fallback, directory=True)
    if problem is not None:
        raise OSError(f"{why}, and {problem}")
    warnings.warn(f"dcltal: kernel cache: {why}; using {fallback} (set DCLTAL_CACHE_DIR to a writable "
                  "directory of your own to keep the kernel)", RuntimeWarning, stacklevel=3)
    return fallback


def _sidecar(library_path: Path) -> Path:
    return library_path.with_name(library_path.name + ".sha256")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _distrust(library_path: Path) -> str | None:
    """Why the library at ``library_path`` must not be loaded (None where it may): it or its sidecar
    is not this user's own, or its content is not what the build recorded."""
    sidecar = _sidecar(library_path)
    for path in (library_path, sidecar):
        problem = _not_own(path)
        if problem is not None:
            return problem
    if _sha256(library_path) != sidecar.read_text().strip():
        return f"{library_path}'s sha256 is not the one its build recorded in {sidecar}"
    return None


def _cpu_identity() -> str:
    """What -march=native depends on: the machine and, on Linux, the CPU's model and feature flags."""
    cpu = ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        pass
    return f"{platform.machine()}|{platform.processor()}|{cpu}"


def _compile(compiler: str, target: Path) -> None:
    """Compile SOURCE into ``target`` (a temporary file, then a rename: concurrent builds are safe),
    recording its sha256 in the sidecar first (a reader between the two sees no library, or one that
    does not match and is rebuilt)."""
    with atomic_path(target) as tmp:
        for extra in (CPU_FLAGS, []):
            try:
                run = subprocess.run([compiler, *FLAGS, *extra, str(SOURCE), "-o", str(tmp), "-lm"],
                                     capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise OSError(f"{compiler} ran past {COMPILE_TIMEOUT_S} s") from None
            if run.returncode == 0:
                break
        else:
            said = run.stderr.strip()
            raise OSError(f"{compiler} failed: {said.splitlines()[-1] if said else run.returncode}")
        tmp.chmod(0o700)  # the compiler's mode follows the umask, which may let the group write
        write_text(_sidecar(target), _sha256(tmp) + "\n")  # a private temporary file, renamed


def _remember_failure(marker: Path, reason: str) -> None:
    """Write ``marker`` so later processes skip the build (best effort: an unwritable cache just retries)."""
    try:
        write_text(marker, reason + "\n")
    except OSError:
        pass


def _library_name(compiler: str) -> str:
    key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, *FLAGS, *CPU_FLAGS, _cpu_identity()])
                         .encode()).hexdigest()[:16]
    return f"region_pool-{key}.so"


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, built on first use and loaded only where :func:`_distrust` finds nothing
    (else rebuilt); None (after one warning) where it cannot be had."""
    if os.environ.get("DCLTAL_NATIVE", "1") == "0":
        return None
    compiler = os.environ.get("CC") or next(filter(None, map(shutil.which, ("cc", "gcc", "clang"))), None)
    if compiler is None:
        warnings.warn("dcltal: no C compiler found (set CC); the region pooling runs in torch (slower)",
                      RuntimeWarning, stacklevel=2)
        return None
    name = _library_name(compiler)
    distrusted = None  # why a library found in the cache was not loaded
    try:
        path = cache_dir(name) / name
        failed = path.with_suffix(".failed")
        if failed.exists():
            warnings.warn(f"dcltal: an earlier build of the region pooling kernel failed ({failed.read_text().strip()}); "
                          f"it runs in torch (slower); delete {failed} to try again", RuntimeWarning, stacklevel=2)
            return None
        if os.path.lexists(path):
            distrusted = _distrust(path)
        if distrusted is not None or not os.path.lexists(path):
            try:
                _compile(compiler, path)
            except OSError as err:
                _remember_failure(failed, str(err))
                raise
        problem = _distrust(path)
        if problem is not None:  # another process replaced it between the build and now
            raise OSError(problem)
        lib = ctypes.CDLL(str(path))
    except OSError as err:
        ignored = "" if distrusted is None else f"; ignored the cached one: {distrusted}"
        warnings.warn(f"dcltal: could not build the region pooling kernel ({err}){ignored}; it runs in torch "
                      "(slower)", RuntimeWarning, stacklevel=2)
        return None
    if distrusted is not None:
        warnings.warn(f"dcltal: region pooling kernel rebuilt, the cached one not loaded: {distrusted}",
                      RuntimeWarning, stacklevel=2)
    for fn_name, real in FUNCTIONS.values():
        fn = getattr(lib, fn_name)
        p, i = ctypes.c_void_p, ctypes.c_int64
        fn.argtypes = [p, i, p, i, p, i, i, p, i, i, p, p, p, i, i, p, p, p, real, real]
        fn.restype = ctypes.c_int
    return lib


@functools.cache
def _threads(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(n, thread_name_prefix="dcltal-pool")


def _check(keys: torch.Tensor, values: torch.Tensor, mean_values: torch.Tensor, lo: torch.Tensor,
           hi: torch.Tensor) -> None:
    """ValueError unless the inputs are what the C code may read: on the CPU; ``keys``, ``values``
    and ``mean_values`` 2-D of one dtype the kernel is built for, with as many rows S each and
    contiguous columns; ``lo`` and ``hi`` 1-D int64 of as many rows, contiguous, 0 <= lo < hi <= S."""
    named = {"keys": keys, "values": values, "mean_values": mean_values, "lo": lo, "hi": hi}
    for what, t in named.items():
        if t.device.type != "cpu":
            raise ValueError(f"region_pool: {what} is on {t.device}, not the CPU")
    for what in ("keys", "values", "mean_values"):
        t = named[what]
        if t.dim() != 2 or t.dtype != keys.dtype or t.dtype not in FUNCTIONS:
            raise ValueError(f"region_pool: {what} must be 2-D float32 or float64 like keys, got {t.dim()}-D {t.dtype}")
        if t.shape[0] != keys.shape[0]:
            raise ValueError(f"region_pool: {what} has {t.shape[0]} rows, keys {keys.shape[0]}")
        if t.stride(-1) != 1 and t.shape[1] > 1:
            raise ValueError(f"region_pool: {what}'s columns are not contiguous (strides {t.stride()})")
    for what in ("lo", "hi"):
        t = named[what]
        if t.dim() != 1 or t.dtype != torch.int64 or not t.is_contiguous():
            raise ValueError(f"region_pool: {what} must be a contiguous 1-D int64 tensor, got {t.dim()}-D {t.dtype}")
    if lo.shape != hi.shape:
        raise ValueError(f"region_pool: lo has {lo.shape[0]} regions, hi {hi.shape[0]}")
    bad = (lo < 0) | (hi <= lo) | (hi > keys.shape[0])
    if bool(bad.any()):
        r = int(torch.nonzero(bad)[0])
        raise ValueError(f"region_pool: region {r} is [{int(lo[r])}, {int(hi[r])}), not within "
                         f"0 <= lo < hi <= {keys.shape[0]} ({int(bad.sum())} such regions)")


def region_pool(keys: torch.Tensor, values: torch.Tensor, mean_values: torch.Tensor, lo: torch.Tensor,
                hi: torch.Tensor, *, cos_eps: float, attention_eps: float):
    """(f_o [R, D], attended [R, E], mean [R, E2]) of the regions [lo, hi) of ``keys`` [S, D]: the max
    (Eq. 6), the attention-weighted sum of ``values`` [S, E] (Eq. 7-8, as
    :func:`dcltal.ops.pooling.pool_regions`) and the mean of ``mean_values`` [S, E2]. The inputs are
    checked first (:func:`_check`, ValueError). Regions run in order of start, split between torch's
    thread count of workers by their snippet counts."""
    _check(keys, values, mean_values, lo, hi)
    r, d = lo.shape[0], keys.shape[1]
    f_o, att, mean = keys.new_empty(r, d), keys.new_empty(r, values.shape[1]), keys.new_empty(r, mean_values.shape[1])
    if r == 0:
        return f_o, att, mean
    norms = keys.norm(dim=-1).clamp_min(cos_eps)
    order = torch.argsort(lo)
    work = torch.cumsum((hi - lo)[order], 0)
    n = min(torch.get_num_threads(), r)
    cuts = [0, *torch.searchsorted(work, work[-1] * torch.arange(1, n) // n, right=True).tolist(), r]
    name, real = FUNCTIONS[keys.dtype]
    lib = library()
    if lib is None:
        raise RuntimeError("region_pool: the compiled kernel is not available (see dcltal.ops.pooling.backend)")
    fn = getattr(lib, name)
    args = (keys.data_ptr(), keys.stride(0), norms.data_ptr(), d, values.data_ptr(), values.stride(0), values.shape[1],
            mean_values.data_ptr(), mean_values.stride(0), mean_values.shape[1], lo.data_ptr(), hi.data_ptr(),
            order.data_ptr())
    tail = (f_o.data_ptr(), att.data_ptr(), mean.data_ptr(), real(cos_eps), real(attention_eps))
    if n == 1:
        failed = [fn(*args, 0, r, *tail)]
    else:  # ctypes releases the GIL during each call
        failed = list(_threads(n).map(lambda k: fn(*args, cuts[k], cuts[k + 1], *tail), range(n)))
    if any(failed):
        raise MemoryError("region pooling: out of memory")
    return f_o, att, mean
