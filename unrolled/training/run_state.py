"""The trainer's run state: where a run stands, and what a resumable checkpoint stores and restores
(``to_dict`` / ``from_dict``: JSON plus tensors, so the file stays loadable with ``weights_only=True``)."""
from __future__ import annotations

import math
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
        """Inverse of ``to_dict``; CheckpointError if ``data`` is not a complete, consistent state of this
        version (``check_state``)."""
        if data is None:
            raise CheckpointError("this file holds no trainer state (a model file such as model.pt, saved without "
                                  "resume information); resume from the run's checkpoint.pt")
        try:
            check_state(data, tensors)
            optimizer = None if data["optimizer"] is None else join_tensors(data["optimizer"], tensors)
        except (CheckpointError, TypeError, ValueError) as err:
            raise CheckpointError(f"{err}; re-create the checkpoint (start the run again)") from None
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")} if data["has_best"] else None
        return cls(**{k: data[k] for k in _JSON_FIELDS}, best=best, optimizer=optimizer,
                   numpy_rng=data["numpy_rng"], torch_rng=tensors["rng.torch"])


def _count(data: dict[str, Any], name: str, upper: int | None = None) -> int:
    """``data[name]``, which must be a non-negative integer (at most ``upper``)."""
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (upper is not None and value > upper):
        what = "a non-negative integer" if upper is None else f"an integer in 0..{upper}"
        raise CheckpointError(f"the trainer state's {name} must be {what}, got {value!r}")
    return value


def _number_or_none(data: dict[str, Any], name: str) -> None:
    value = data[name]
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)):
        raise CheckpointError(f"the trainer state's {name} must be a number or null, got {value!r}")


def check_state(data: Any, tensors: Mapping[str, torch.Tensor]) -> None:
    """CheckpointError naming the first fault unless ``data`` (with ``tensors``) is a trainer state of this
    version whose fields have their types and ranges and agree with each other: counters are non-negative
    integers, ``stages_done`` has ``stage_index`` entries whose epochs plus ``epoch_in_stage`` make
    ``global_epoch``, ``history`` holds epochs 0..``global_epoch`` in order, ``stage_bad`` and
    ``stage_best_epoch`` lie within the run so far, ``wall_time_s`` is finite and >= 0, a finished run has
    its final metrics, and the tensors for the torch generator and the best parameters are present."""
    if not isinstance(data, dict) or data.get("state_version") != STATE_VERSION:
        raise CheckpointError(f"the trainer state is not of version {STATE_VERSION}")
    known = (*_JSON_FIELDS, "optimizer", "numpy_rng", "has_best", "state_version")
    missing = [k for k in known if k not in data] + ([] if "rng.torch" in tensors else ["rng.torch"])
    if missing:
        raise CheckpointError(f"the trainer state lacks {', '.join(missing)}")
    extra = sorted(set(data) - set(known))
    if extra:
        raise CheckpointError(f"the trainer state has unexpected fields {', '.join(extra)}")
    for name in ("stage_stopped", "finished", "has_best"):
        if not isinstance(data[name], bool):
            raise CheckpointError(f"the trainer state's {name} must be true or false, got {data[name]!r}")
    stage_index, epoch, in_stage = _count(data, "stage_index"), _count(data, "global_epoch"), \
        _count(data, "epoch_in_stage")
    _number_or_none(data, "stage_start")
    _number_or_none(data, "stage_best")
    wall = data["wall_time_s"]
    if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not math.isfinite(wall) or wall < 0:
        raise CheckpointError(f"the trainer state's wall_time_s must be a finite number >= 0, got {wall!r}")
    done = data["stages_done"]
    if not isinstance(done, list) or len(done) != stage_index or not all(
            isinstance(s, dict) and isinstance(s.get("epochs_run"), int) and not isinstance(s["epochs_run"], bool)
            and s["epochs_run"] >= 0 for s in done):
        raise CheckpointError(f"the trainer state's stages_done must list {stage_index} finished stages "
                              f"(stage_index) with their epochs_run")
    if sum(s["epochs_run"] for s in done) + in_stage != epoch:
        raise CheckpointError(f"the trainer state is inconsistent: global_epoch is {epoch}, but stages_done and "
                              f"epoch_in_stage account for {sum(s['epochs_run'] for s in done) + in_stage} epochs")
    history = data["history"]
    if not isinstance(history, list) or len(history) != epoch + 1:
        count = len(history) - 1 if isinstance(history, list) else history
        raise CheckpointError(f"the trainer state is inconsistent: global_epoch is {epoch}, but the history "
                              f"records {count} epochs")
    for i, entry in enumerate(history):
        if not isinstance(entry, dict) or entry.get("epoch") != i or not {"val_nmse_db", "val_objective"} <= set(entry):
            raise CheckpointError(f"the trainer state's history entry {i} is not the record of epoch {i}")
    _count(data, "stage_bad", in_stage)
    if data["stage_best_epoch"] is not None:
        _count(data, "stage_best_epoch", epoch)
    final = data["final"]
    if (final is None and data["finished"]) or (final is not None and not (
            isinstance(final, dict) and {"val_nmse_db", "val_objective"} <= set(final))):
        raise CheckpointError("the trainer state's final metrics are missing or malformed")
    rng = data["numpy_rng"]
    if rng is not None and not (isinstance(rng, dict) and isinstance(rng.get("bit_generator"), str)):
        raise CheckpointError("the trainer state's numpy_rng is not a numpy bit generator state")
    if data["optimizer"] is not None and not isinstance(data["optimizer"], dict):
        raise CheckpointError("the trainer state's optimizer is not an optimizer state dict")
    gen = tensors["rng.torch"]
    if gen.dtype != torch.uint8 or gen.ndim != 1:
        raise CheckpointError(f"the trainer state's rng.torch must be a 1-D uint8 tensor, got {gen.dtype} "
                              f"{list(gen.shape)}")
    has_best = any(k.startswith("best.") for k in tensors)
    if has_best != data["has_best"]:
        raise CheckpointError(f"the trainer state's has_best is {data['has_best']}, but best.* tensors are "
                              f"{'present' if has_best else 'absent'}")
