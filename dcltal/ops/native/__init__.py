"""The aggregation's region pooling without autograd on the CPU (Eq. 6-8 and Eq. 10's mean), as one
compiled pass over each region's snippets (``region_pool.c`` beside this file).

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
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from dcltal.io import write_text

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
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(d, os.W_OK | os.X_OK)


def cache_dir(name: str) -> Path:
    """The directory that holds (or will hold) the file ``name``: the wanted cache where it holds
    the file or can be written, else a private directory under the system's temporary directory
    (one warning naming DCLTAL_CACHE_DIR)."""
    try:
        wanted: Path | None = _wanted_cache_dir()
    except RuntimeError:  # no HOME and no password entry for this uid
        wanted = None
    if wanted is not None and ((wanted / name).exists() or _writable(wanted)):
        return wanted
    fallback = Path(tempfile.gettempdir()) / f"dcltal-cache-{os.getuid()}"
    fallback.mkdir(mode=0o700, exist_ok=True)
    why = "no home directory" if wanted is None else f"{wanted} is not writable"
    warnings.warn(f"dcltal: kernel cache: {why}; using {fallback} (set DCLTAL_CACHE_DIR to a writable "
                  "directory to keep the kernel)", RuntimeWarning, stacklevel=3)
    return fallback


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
    """Compile SOURCE into ``target`` (a temporary file, then a rename: concurrent builds are safe)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        for extra in (CPU_FLAGS, []):
            try:
                run = subprocess.run([compiler, *FLAGS, *extra, str(SOURCE), "-o", tmp, "-lm"],
                                     capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise OSError(f"{compiler} ran past {COMPILE_TIMEOUT_S} s") from None
            if run.returncode == 0:
                os.replace(tmp, target)
                return
        raise OSError(f"{compiler} failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remember_failure(marker: Path, reason: str) -> None:
    """Write ``marker`` so later processes skip the build (best effort: an unwritable cache just retries)."""
    try:
        write_text(marker, reason + "\n")
    except OSError:
        pass


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, built on first use; None (after one warning) where it cannot be had."""
    if os.environ.get("DCLTAL_NATIVE", "1") == "0":
        return None
    compiler = os.environ.get("CC") or next(filter(None, map(shutil.which, ("cc", "gcc", "clang"))), None)
    if compiler is None:
        warnings.warn("dcltal: no C compiler found (set CC); the region pooling runs in torch (slower)",
                      RuntimeWarning, stacklevel=2)
        return None
    key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, *FLAGS, *CPU_FLAGS, _cpu_identity()])
                         .encode()).hexdigest()[:16]
    try:
        path = cache_dir(f"region_pool-{key}.so") / f"region_pool-{key}.so"
        failed = path.with_suffix(".failed")
        if failed.exists():
            warnings.warn(f"dcltal: an earlier build of the region pooling kernel failed ({failed.read_text().strip()}); "
                          f"it runs in torch (slower); delete {failed} to try again", RuntimeWarning, stacklevel=2)
            return None
        if not path.exists():
            try:
                _compile(compiler, path)
            except OSError as err:
                _remember_failure(failed, str(err))
                raise
        lib = ctypes.CDLL(str(path))
    except OSError as err:
        warnings.warn(f"dcltal: could not build the region pooling kernel ({err}); it runs in torch (slower)",
                      RuntimeWarning, stacklevel=2)
        return None
    for name, real in FUNCTIONS.values():
        fn = getattr(lib, name)
        p, i = ctypes.c_void_p, ctypes.c_int64
        fn.argtypes = [p, i, p, i, p, i, i, p, i, i, p, p, p, i, i, p, p, p, real, real]
        fn.restype = ctypes.c_int
    return lib


@functools.cache
def _threads(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(n, thread_name_prefix="dcltal-pool")


def usable(*tensors: torch.Tensor) -> bool:
    """Whether :func:`region_pool` takes these tensors: on the CPU, floating point, no autograd."""
    if any(t.device.type != "cpu" or not t.dtype.is_floating_point for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    return library() is not None


def region_pool(keys: torch.Tensor, values: torch.Tensor, mean_values: torch.Tensor, lo: torch.Tensor,
                hi: torch.Tensor, cos_eps: float, attention_eps: float):
    """(f_o [R, D], attended [R, E], mean [R, E2]) of the regions [lo, hi) of ``keys`` [S, D]: the max
    (Eq. 6), the attention-weighted sum of ``values`` [S, E] (Eq. 7-8, :func:`dcltal.ops.pooling.attention_weights`)
    and the mean of ``mean_values`` [S, E2]. Call only where :func:`usable` holds. Regions run in order
    of start, split between torch's thread count of workers by their snippet counts. Float32 and float64
    inputs are pooled as they are; any other mixture (bfloat16 under autocast) in float32, the outputs too."""
    dtype = keys.dtype if keys.dtype in FUNCTIONS and values.dtype == mean_values.dtype == keys.dtype else torch.float32
    keys, values, mean_values = (t.to(dtype) if t.stride(-1) == 1 else t.to(dtype).contiguous()
                                 for t in (keys, values, mean_values))
    lo, hi = lo.long().contiguous(), hi.long().contiguous()
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
    fn = getattr(library(), name)
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
