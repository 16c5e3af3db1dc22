"""The trainer's run state: where a run stands, and what a resumable checkpoint stores and restores
(``to_dict`` / ``from_dict``: JSON plus tensors, so the file stays loadable with ``weights_only=True``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from unfoldkit.unrolled.training.checkpoint import CheckpointError, join_tensors, split_tensors

#: version of the stored layout (a checkpoint with another one cannot be resumed)
STATE_VERSION = 1
#: fields stored as JSON as they are
_JSON_FIELDS = ("stage_index", "epoch_in_stage", "global_epoch", "stage_start", "stage_best", "stage_best_epoch",
                "stage_bad", "stage_stopped", "stages_done", "history", "wall_time_s", "finished", "final")


@dataclass
class RunState:
    """Progress of a training run.

    Position: ``stage_index``, ``epoch_in_stage`` and ``global_epoch`` (epochs done in the stage, the run).
    Early stopping in the stage: ``stage_start`` (monitored value before its first epoch; None until it
    begins), ``stage_best`` at ``stage_best_epoch`` with parameters ``best`` (with ``restore_best``),
    ``stage_bad`` (epochs without improvement), ``stage_stopped``. Record: ``stages_done``, ``history``
    (entry 0: the initial model), ``wall_time_s`` (all sessions), ``finished``, ``final`` (validation
    metrics of the returned model). Taken when a checkpoint is written: ``optimizer`` (its state_dict, to
    continue the stage with), ``numpy_rng`` (bit_generator state), ``torch_rng`` (the shuffling generator).
    """

    stage_index: int = 0
    epoch_in_stage: int = 0
    global_epoch: int = 0
    stage_start: float | None = None
    stage_best: float | None = None
    stage_best_epoch: int | None = None
    stage_bad: int = 0
    stage_stopped: bool = False
    stages_done: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0
    finished: bool = False
    final: dict[str, Any] | None = None
    best: dict[str, torch.Tensor] | None = None
    optimizer: dict[str, Any] | None = None
    numpy_rng: dict[str, Any] | None = None
    torch_rng: torch.Tensor | None = None

    def end_stage(self, description: dict[str, Any]) -> None:
        """Record the current stage (``description``: ``Stage.describe()``) as done and move to the next."""
        self.stages_done.append({**description, "epochs_run": self.epoch_in_stage, "start_monitor": self.stage_start,
                                 "best_monitor": self.stage_best, "best_epoch": self.stage_best_epoch,
                                 "stopped_early": self.stage_stopped})
        self.stage_index += 1
        self.epoch_in_stage = self.stage_bad = 0
        self.stage_start = self.stage_best = self.stage_best_epoch = self.best = self.optimizer = None
        self.stage_stopped = False

    def to_dict(self, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The JSON-serialisable state; its tensors go into ``tensors`` (keys ``optimizer.*``, ``rng.torch``,
        ``best.<parameter>``)."""
        data = {name: getattr(self, name) for name in _JSON_FIELDS}
        data["optimizer"] = None if self.optimizer is None else split_tensors(self.optimizer, "optimizer", tensors)
        data["numpy_rng"] = self.numpy_rng
        data["has_best"] = self.best is not None
        data["state_version"] = STATE_VERSION
        if self.torch_rng is not None:
            tensors["rng.torch"] = self.torch_rng
        tensors.update({f"best.{k}": v for k, v in (self.best or {}).items()})
        return data

    @classmethod
    def from_dict(cls, data: Any, tensors: Mapping[str, torch.Tensor]) -> RunState:
        """Inverse of ``to_dict``; CheckpointError if ``data`` is not a complete state of this version."""
        if not isinstance(data, dict) or data.get("state_version") != STATE_VERSION:
            raise CheckpointError("the checkpoint holds no trainer state")
        missing = [k for k in (*_JSON_FIELDS, "optimizer", "numpy_rng", "has_best") if k not in data]
        missing += [] if "rng.torch" in tensors else ["rng.torch"]
        if missing:
            raise CheckpointError(f"the trainer state lacks {', '.join(missing)}")
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")} if data["has_best"] else None
        optimizer = None if data["optimizer"] is None else join_tensors(data["optimizer"], tensors)
        return cls(**{k: data[k] for k in _JSON_FIELDS}, best=best, optimizer=optimizer,
                   numpy_rng=data["numpy_rng"], torch_rng=tensors["rng.torch"])
