"""DIR/metrics.csv (one row per model and epoch, plus a ``fused`` row for the joint validation),
TensorBoard events in DIR/tensorboard (``tensorboard --logdir DIR``) where the ``dcltal[tensorboard]``
extra is installed (else one warning, and the run goes on), and the same as a line per row in the
run's log (dcltal.runlog)."""
from __future__ import annotations

import csv
import io
import logging
import sys
from pathlib import Path

from dcltal.io import write_text

FIRST = ("epoch", "stream")
log = logging.getLogger(__name__)


class MetricsLog:
    def __init__(self, work_dir: str | Path, resume_epoch: int = 0):
        self.path = Path(work_dir) / "metrics.csv"
        self.rows: list[dict[str, str]] = []
        self.columns: list[str] = list(FIRST)
        if resume_epoch and self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or FIRST)
                # rows after the checkpoint's epoch belong to the killed run's unfinished epoch
                self.rows = [r for r in reader if int(r["epoch"]) <= resume_epoch]
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("warning: tensorboard is not installed, so no TensorBoard events are written (metrics.csv has "
                  "the numbers): pip install 'dcltal[tensorboard]'", file=sys.stderr)
            self.tb = None
        else:
            self.tb = SummaryWriter(str(Path(work_dir) / "tensorboard"), purge_step=resume_epoch + 1 if resume_epoch else None)

    def write(self, epoch: int, rows: dict[str, dict[str, float]]) -> None:
        """Add one epoch's ``{stream: {column: value}}`` and rewrite the file (atomically)."""
        for stream, values in rows.items():
            for key, value in values.items():
                if key not in self.columns:
                    self.columns.append(key)
                if self.tb is not None:
                    self.tb.add_scalar(f"{stream}/{key}", value, epoch)
            self.rows.append({"epoch": str(epoch), "stream": stream, **{k: f"{v:.6g}" for k, v in values.items()}})
            log.info("epoch %d %s: %s", epoch, stream, ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
        if self.tb is not None:
            self.tb.flush()
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, out.getvalue())

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
