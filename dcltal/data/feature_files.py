"""Reading one video's feature array, the reader chosen by the file's extension (CONTRACT §1).

``.npy`` (numpy), ``.npz`` (key ``feats``, or its only array: OpenTAD), ``.pt`` (a tensor saved by
torch, loaded with ``weights_only=True``), ``.csv`` (BMN/BSN's ActivityNet ``csv_mean_100``: a header
row, then a row a snippet), ``.pkl`` (only where ``data.trust_pickle`` says so: unpickling runs code),
an extension-less file (numpy where it starts with the npy magic, else torch), and a dataset of an
HDF5 file (:class:`H5File`: one file, a dataset a video; G-TAD's and ActionFormer's ActivityNet
features; needs the ``dcltal[h5]`` extra).
"""
from __future__ import annotations

import csv
import pickle
import zipfile
from pathlib import Path

import numpy as np

from dcltal.errors import UserError
from dcltal.extras import require

NPY_MAGIC = b"\x93NUMPY"
H5_SUFFIXES = (".h5", ".hdf5")
SUFFIXES = (".npy", ".npz", ".pt", ".csv", ".pkl")  # a video id is the file's name without one of these


def _load_torch(path: Path) -> np.ndarray:
    import torch  # only here: commands that read .npy features need no torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a bad file; all mean the same to the user
        raise UserError(f"feature file {path} could not be read by torch.load ({type(e).__name__}); "
                        "expected a tensor saved with torch.save") from None
    if not isinstance(obj, torch.Tensor):
        raise UserError(f"feature file {path} holds a {type(obj).__name__}, expected one [T, D] tensor")
    if obj.is_complex():  # .float() would drop the imaginary part without a word
        raise UserError(f"feature file {path} holds {obj.dtype} values, expected real numbers (float32 or float16)")
    return obj.detach().float().numpy()


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise UserError(f"feature file {path} is not a valid .npy file; re-export it with numpy.save") from None


def _load_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if "feats" in keys or len(keys) == 1:
                return z["feats" if "feats" in keys else keys[0]]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise UserError(f"feature file {path} is not a valid .npz file; re-export it with numpy.savez") from None
    raise UserError(f"feature file {path} holds arrays {keys}; expected one, or one named 'feats'")


def _load_csv(path: Path) -> np.ndarray:
    """BMN/BSN's layout: a header row (column names), then the values of one snippet a row."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        return np.array([[float(x) for x in row] for row in rows if row], dtype=np.float32).reshape(len(rows), -1)
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"feature file {path} is not a CSV of numbers under a header row "
                        "(BMN/BSN's layout: one row a snippet)") from None


def _load_pickle(path: Path, trusted: bool) -> np.ndarray:
    if not trusted:
        raise UserError(f"feature file {path} is a pickle, which can run code when read; "
                        "set data.trust_pickle=true if you trust it")
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f)
    except Exception as e:  # unpickling raises anything the file's code raises
        raise UserError(f"feature file {path} could not be unpickled ({type(e).__name__})") from None
    if isinstance(obj, dict) and "feats" in obj:
        obj = obj["feats"]
    try:
        return np.asarray(obj)  # its dtype is checked with every reader's (features.py)
    except (TypeError, ValueError):
        raise UserError(f"feature file {path} holds a {type(obj).__name__}, expected one [T, D] array "
                        "(or a dict with 'feats')") from None


def load_file(path: Path, trust_pickle: bool = False) -> np.ndarray:
    """One video's ``[T, C]`` array from ``path``, read as its extension says."""
    if not path.is_file():
        raise UserError(f"feature file not found: {path} (check data.features)")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path)
    if suffix == ".csv":
        return _load_csv(path)
    if suffix == ".pkl":
        return _load_pickle(path, trust_pickle)
    if suffix == ".pt":
        return _load_torch(path)
    with open(path, "rb") as f:
        is_npy = f.read(len(NPY_MAGIC)) == NPY_MAGIC
    if is_npy:
        return _load_npy(path)
    if suffix == ".npy":
        raise UserError(f"feature file {path} is not a valid .npy file; re-export it with numpy.save")
    return _load_torch(path)


class H5File:
    """An HDF5 file holding a dataset a video, named by the video id."""

    def __init__(self, path: Path) -> None:
        h5py = require("h5", f"reading {path}")
        self.path, self._h5py = path, h5py
        try:
            with h5py.File(path, "r") as f:
                self.keys = sorted(k for k in f.keys() if isinstance(f[k], h5py.Dataset))
        except OSError:
            raise UserError(f"feature file {path} is not a valid HDF5 file") from None

    def load(self, key: str) -> np.ndarray:
        with self._h5py.File(self.path, "r") as f:
            return np.asarray(f[key][()])
