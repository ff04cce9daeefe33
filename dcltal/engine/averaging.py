"""Weight averaging (``train.ema_decay``): an exponential moving average of a model's weights, updated
after every optimiser step; validation, best.pt and last.pt's model entries use the average, the
optimiser keeps stepping the raw weights (which last.pt's training state carries for ``--resume``)."""
from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    """``decay`` 0: no average, :meth:`model` is the trained model itself."""

    def __init__(self, model: nn.Module, decay: float):
        self.trained = model
        self.average = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
                        if decay > 0 else None)

    def update(self) -> None:
        if self.average is not None:
            self.average.update_parameters(self.trained)

    def model(self) -> nn.Module:
        """The weights to validate, save and infer with."""
        return self.average.module if self.average is not None else self.trained

    def state(self) -> dict | None:
        """What ``--resume`` needs beyond the saved model entry: the raw weights and the average's count."""
        if self.average is None:
            return None
        return {"trained": self.trained.state_dict(), "n_averaged": self.average.n_averaged.clone()}

    def load_state(self, state: dict | None, saved_entry: dict) -> None:
        """Restore from last.pt: ``saved_entry`` is the model entry it saved (the average where there is one)."""
        if self.average is None or state is None:
            self.trained.load_state_dict(saved_entry)
            return
        self.trained.load_state_dict(state["trained"])
        self.average.module.load_state_dict(saved_entry)
        self.average.n_averaged.copy_(state["n_averaged"])
