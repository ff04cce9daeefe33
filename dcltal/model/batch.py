"""Several videos packed end to end, with each proposal's regions as snippet ranges (DESIGN §3)."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from dcltal.data.grid import TimeGrid


@dataclass
class PackedBatch:
    features: torch.Tensor  # [S, D] the snippets of all videos, end to end (no padding)
    video_offsets: torch.Tensor  # [V + 1] first snippet of each video in `features`; the last entry is S
    proposal_video: torch.Tensor  # [N] video of each proposal
    regions: torch.Tensor  # [N, 3, 2] half-open snippet ranges into `features`: centre, left, right extended region

    def to(self, device: torch.device | str) -> "PackedBatch":
        return PackedBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def num_videos(self) -> int:
        return self.video_offsets.numel() - 1


def region_ranges(proposals: np.ndarray, grid: TimeGrid, num_snippets: int, extend_ratio: float = 0.5) -> np.ndarray:
    """[N, 3, 2] snippet ranges of each proposal (seconds, [N, 2]) and of its two extended regions,
    ``extend_ratio`` of its length on each side (the paper's 50%), clipped to the video and at
    least one snippet each."""
    s, e = proposals[:, 0].astype(np.float64), proposals[:, 1].astype(np.float64)
    ext = extend_ratio * (e - s)
    starts = np.stack([s, s - ext, e], axis=1)
    ends = np.stack([e, s, e + ext], axis=1)
    lo, hi = grid.snippet_ranges(starts.ravel(), ends.ravel(), num_snippets)
    return np.stack([lo, hi], axis=1).reshape(-1, 3, 2)


def pack_videos(
    features: list[torch.Tensor],
    proposals: list[np.ndarray],
    grids: list[TimeGrid],
    extend_ratio: float = 0.5,
) -> PackedBatch:
    """Pack videos (features [T_v, D], proposals [N_v, 2] in seconds, one grid a video)."""
    lengths = [f.shape[0] for f in features]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    regions = [region_ranges(p, g, t, extend_ratio) + off for p, g, t, off in zip(proposals, grids, lengths, offsets)]
    video_of = [np.full(len(p), v, dtype=np.int64) for v, p in enumerate(proposals)]
    return PackedBatch(
        features=torch.cat(features, dim=0),
        video_offsets=torch.from_numpy(offsets),
        proposal_video=torch.from_numpy(np.concatenate(video_of)),
        regions=torch.from_numpy(np.concatenate(regions).reshape(-1, 3, 2)),
    )
