"""The trainer: seeded data, stages of a scheme, validation, early stopping, resumable checkpoints.

``train(model, problem, scheme="end-to-end", epochs=..., ...)`` trains ``model`` in place and returns a
TrainResult (history, best and final validation NMSE, wall time, peak memory). Everything is batched:
a training step runs the model on a (B, m) batch of observations and its whole trajectory (K+1, B, n).

Randomness: one seed feeds a numpy SeedSequence split into three independent streams: the fixed
validation set, the training data (a fixed training set, or fresh batches drawn at every step), and a
torch.Generator that shuffles a fixed training set. The trainer does not touch torch's global RNG.
Where a run stands is a ``RunState`` (``run_state.py``); a checkpoint saved after an epoch holds the model
and that state (position, early-stopping counters, history, optimizer state, both generators' states, the
stage's best parameters), so ``resume=True`` continues an interrupted run bit-exactly on the same device
(CPU runs are deterministic; CUDA ones are when its kernels are). Metrics: ``evaluation.evaluate``.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from unfoldkit.unrolled.dtypes import DTYPE_NAMES, as_dtype
from unfoldkit.unrolled.problems.base import Problem, ProblemBatch
from unfoldkit.unrolled.resources import peak_memory
from unfoldkit.unrolled.metrics import LayerNMSE
from unfoldkit.unrolled.training.checkpoint import CheckpointError, load_checkpoint, restore_state, save_checkpoint
from unfoldkit.unrolled.training.evaluation import evaluate
from unfoldkit.unrolled.training.run_state import RunState
from unfoldkit.unrolled.training.schemes import Scheme, Stage, make_scheme
from unfoldkit.unrolled.training.threads import limit_threads
from unfoldkit.unrolled.validation import nonnegative_real, positive_int, positive_real

#: name of the resumable checkpoint inside ``checkpoint_dir``
CHECKPOINT_NAME = "checkpoint.pt"
#: learning-rate schedules within a stage (factor applied to the stage's learning rate)
LR_SCHEDULES = ("constant", "step", "exponential", "cosine")
OPTIMIZERS = ("adam", "sgd")
#: settings that may differ when resuming (they do not change the computed numbers on one device)
RESUME_FREE = ("device", "checkpoint_dir", "checkpoint_every", "progress", "threads", "stop_after")


# ---- configuration ---------------------------------------------------------------------------------


def _dtype_name(dtype: Any) -> str | None:
    return None if dtype is None else DTYPE_NAMES[as_dtype(dtype)]


@dataclass
class TrainConfig:
    """Trainer settings (validated on construction; ValueError names the bad one).

    epochs: epochs per stage (the whole run for single-stage schemes); lr: base learning rate;
    batch_size; steps_per_epoch: steps of an epoch with fresh batches; train_size: size of a fixed
    training set (None: fresh batches every step; otherwise an epoch is one shuffled pass); val_size:
    the fixed validation set; val_batch_size: chunk size of validation; patience: epochs without an
    improvement of the monitored value by more than min_delta before a stage stops (None: never);
    lr_schedule in LR_SCHEDULES with lr_gamma / lr_step (step: gamma^(e // step); exponential: gamma^e;
    cosine: (1 + cos(pi e / epochs)) / 2, e the epoch within the stage); optimizer "adam" or "sgd" (with
    momentum); grad_clip: max global gradient norm (None: no clipping); seed; device "cpu" or "cuda[:i]";
    dtype None (the model's), "float32" or "float64"; checkpoint_dir / checkpoint_every: save a
    resumable checkpoint every N epochs; restore_best: end each stage with its best parameters;
    progress: show a tqdm bar on stderr; threads: torch and BLAS threads while training (None: unchanged;
    ``threads.limit_threads``, restored afterwards; 1 is often fastest on a small shared CPU); stop_after:
    pause this session once N epochs (counted over the whole run) are done, writing a checkpoint there
    (needs checkpoint_dir; the result has ``paused=True`` and ``resume=True`` continues the same run, so a
    long run can be split into sessions of any length; the numbers are those of an uninterrupted run).
    """

    epochs: int = 50
    lr: float = 1e-3
    batch_size: int = 64
    steps_per_epoch: int = 50
    train_size: int | None = None
    val_size: int = 1000
    val_batch_size: int = 1000
    patience: int | None = None
    min_delta: float = 0.0
    lr_schedule: str = "constant"
    lr_gamma: float = 0.5
    lr_step: int = 10
    optimizer: str = "adam"
    momentum: float = 0.0
    grad_clip: float | None = None
    seed: int = 0
    device: str = "cpu"
    dtype: str | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    restore_best: bool = True
    progress: bool = True
    threads: int | None = None
    stop_after: int | None = None

    def __post_init__(self) -> None:
        self.epochs = positive_int("epochs", self.epochs)
        self.lr = positive_real("lr", self.lr)
        self.batch_size = positive_int("batch_size", self.batch_size)
        self.steps_per_epoch = positive_int("steps_per_epoch", self.steps_per_epoch)
        if self.train_size is not None:
            self.train_size = positive_int("train_size", self.train_size)
        self.val_size = positive_int("val_size", self.val_size)
        self.val_batch_size = positive_int("val_batch_size", self.val_batch_size)
        if self.patience is not None:
            self.patience = positive_int("patience", self.patience)
        self.min_delta = nonnegative_real("min_delta", self.min_delta)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        self.lr_gamma = positive_real("lr_gamma", self.lr_gamma)
        self.lr_step = positive_int("lr_step", self.lr_step)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        self.momentum = nonnegative_real("momentum", self.momentum)
        if self.momentum >= 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.grad_clip is not None:
            self.grad_clip = positive_real("grad_clip", self.grad_clip)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.device, (str, torch.device)):
            raise ValueError(f"device must be a string such as 'cpu' or 'cuda', got {self.device!r}")
        self.device = str(self.device)
        self.dtype = _dtype_name(self.dtype)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = str(self.checkpoint_dir)
        self.checkpoint_every = positive_int("checkpoint_every", self.checkpoint_every)
        self.restore_best = bool(self.restore_best)
        self.progress = bool(self.progress)
        if self.threads is not None:
            self.threads = positive_int("threads", self.threads)
        if self.stop_after is not None:
            self.stop_after = positive_int("stop_after", self.stop_after)

    def settings(self) -> dict[str, Any]:
        """All settings as a JSON-serialisable dict."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def lr_factor(self, epoch_in_stage: int) -> float:
        """The schedule's factor for epoch ``epoch_in_stage`` (0-based) of a stage."""
        e = epoch_in_stage
        if self.lr_schedule == "step":
            return self.lr_gamma ** (e // self.lr_step)
        if self.lr_schedule == "exponential":
            return self.lr_gamma**e
        if self.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * e / self.epochs))
        return 1.0


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device for "cpu" or "cuda[:i]"; ValueError if unknown, or CUDA is asked but unavailable."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be 'cpu' or 'cuda[:index]', got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:index]', got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


# ---- result ----------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a training run produced.

    ``history``: one dict per epoch (epoch 0 = the initial model): stage, target layer, learning rate,
    mean training loss, per-layer training and validation NMSE in dB (index k = x_k, k = 0..K; None
    without ground truth), per-layer validation objective, the monitored value and whether it improved,
    and the epoch's wall time. ``best_val_nmse_db``: the lowest last-layer validation NMSE (dB) over the
    epochs; ``final_val_nmse_db`` / ``final_val_objective``: per layer, for the returned model.
    ``peak_memory_bytes``: CUDA max allocated (``peak_memory_kind`` "cuda-max-allocated") or the process's
    peak resident set size ("process-peak-rss"), None if not measurable.
    """

    model: nn.Module
    scheme: str
    settings: dict[str, Any]
    history: list[dict[str, Any]]
    stages: list[dict[str, Any]]
    best_val_nmse_db: float | None
    final_val_nmse_db: list[float] | None
    final_val_objective: list[float]
    epochs_run: int
    stopped_early: bool
    wall_time_s: float
    peak_memory_bytes: int | None = None
    peak_memory_kind: str | None = None
    checkpoint_path: Path | None = None
    scheme_settings: dict[str, Any] = field(default_factory=dict)
    paused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (everything but the model itself)."""
        problem = getattr(self.model, "problem", None)
        return {
            "model": {"family": getattr(self.model, "family", type(self.model).__name__),
                      "config": self.model.config() if hasattr(self.model, "config") else None},
            "problem": None if problem is None else {"family": problem.name, "params": problem.params()},
            "scheme": self.scheme, "scheme_settings": self.scheme_settings, "settings": self.settings,
            "best_val_nmse_db": self.best_val_nmse_db, "final_val_nmse_db": self.final_val_nmse_db,
            "final_val_objective": self.final_val_objective, "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early, "wall_time_s": self.wall_time_s,
            "peak_memory_bytes": self.peak_memory_bytes, "peak_memory_kind": self.peak_memory_kind,
            "checkpoint": None if self.checkpoint_path is None else str(self.checkpoint_path),
            "stages": self.stages, "history": self.history, "paused": self.paused,
        }


# ---- the trainer -----------------------------------------------------------------------------------


class Trainer:
    """Trains an unfolded model on a problem with a scheme (see ``train`` for the functional form)."""

    def __init__(self, model: nn.Module, problem: Problem | None = None, scheme: str | Scheme = "end-to-end",
                 config: TrainConfig | None = None, constraint: Callable[[nn.Module], None] | None = None,
                 **scheme_options: Any) -> None:
        if not isinstance(model, nn.Module) or not isinstance(getattr(model, "num_layers", None), int):
            raise ValueError("model must be an UnfoldedModel (an nn.Module with num_layers)")
        problem = problem if problem is not None else getattr(model, "problem", None)
        if not isinstance(problem, Problem):
            raise ValueError(f"problem must be a Problem, got {type(problem).__name__}")
        self.model = model
        self.problem = problem
        self.scheme = make_scheme(scheme, **scheme_options)
        self.config = config if config is not None else TrainConfig()
        if not isinstance(self.config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(self.config).__name__}")
        self.device = resolve_device(self.config.device)
        if constraint is not None and not callable(constraint):
            raise ValueError(f"constraint must be callable (model -> None), got {type(constraint).__name__}")
        #: applied to the model (in place, under no_grad) before training and after every optimizer step: a
        #: projection onto a constraint set, so that every validated, saved and returned state satisfies it
        self.constraint = constraint

    # -- setup ------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        """Where the resumable checkpoint lives (None without a checkpoint_dir)."""
        d = self.config.checkpoint_dir
        return None if d is None else Path(d) / CHECKPOINT_NAME

    def _prepare_model(self) -> torch.dtype:
        cfg = self.config
        dtype = getattr(self.model, "model_dtype", None)
        if cfg.dtype is not None:
            dtype = getattr(torch, cfg.dtype)
            self.model.to(dtype)
            if hasattr(self.model, "model_dtype"):
                self.model.model_dtype = dtype
        if not isinstance(dtype, torch.dtype):
            dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        self.model.to(self.device)
        if self.constraint is not None:  # the initial model too: epoch 0 is validated on a feasible state
            with torch.no_grad():
                self.constraint(self.model)
        return dtype

    def _data(self, dtype: torch.dtype) -> None:
        cfg = self.config
        val_seq, train_seq, torch_seq = np.random.SeedSequence(cfg.seed).spawn(3)
        self.val_batch = self.problem.sample(cfg.val_size, np.random.default_rng(val_seq)).to(dtype, self.device)
        self.train_rng = np.random.default_rng(train_seq)
        self.train_set = None
        if cfg.train_size is not None:
            self.train_set = self.problem.sample(cfg.train_size, self.train_rng).to(dtype, self.device)
        self.torch_gen = torch.Generator(device="cpu")
        self.torch_gen.manual_seed(int(torch_seq.generate_state(1, dtype=np.uint32)[0]))
        self.dtype = dtype
        if self.scheme.supervised and self.val_batch.x is None:
            raise ValueError(f"scheme {self.scheme.name!r} needs ground truth, but problem {self.problem.name!r} "
                             f"samples none (use scheme='unsupervised')")

    def _batches(self) -> Iterator[ProblemBatch]:
        cfg = self.config
        if self.train_set is not None:
            perm = torch.randperm(cfg.train_size, generator=self.torch_gen).to(self.device)
            for start in range(0, cfg.train_size, cfg.batch_size):
                idx = perm[start:start + cfg.batch_size]
                x = None if self.train_set.x is None else self.train_set.x[idx]
                yield ProblemBatch(self.train_set.y[idx], x)
        else:
            for _ in range(cfg.steps_per_epoch):
                yield self.problem.sample(cfg.batch_size, self.train_rng).to(self.dtype, self.device)

    def _optimizer(self, stage: Stage) -> tuple[torch.optim.Optimizer, list[tuple[nn.Parameter, torch.Tensor]]]:
        groups = [{"params": [spec.param], "lr": self.config.lr} for spec in stage.params]
        if self.config.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(groups, lr=self.config.lr)
        else:
            opt = torch.optim.SGD(groups, lr=self.config.lr, momentum=self.config.momentum)
        rows = []
        for spec in stage.params:
            if spec.row_mult is not None:
                p = spec.param
                m = torch.tensor(spec.row_mult, dtype=p.dtype, device=p.device).reshape(-1, *([1] * (p.ndim - 1)))
                rows.append((p, m))
        return opt, rows

    def _set_lr(self, opt: torch.optim.Optimizer, stage: Stage, epoch_in_stage: int) -> float:
        lr = self.config.lr * stage.lr_factor * self.config.lr_factor(epoch_in_stage)
        for group, spec in zip(opt.param_groups, stage.params):
            group["lr"] = lr * spec.lr_mult
        return lr

    def _validate(self) -> dict[str, Any]:
        return evaluate(self.model, self.problem, self.val_batch, self.config.val_batch_size)

    def _monitor(self, ev: dict[str, Any], stage: Stage) -> float:
        if self.scheme.supervised:
            return float(ev["nmse_db"][stage.target_layer])
        return float(ev["objective"][stage.target_layer])

    def _state_copy(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _tick(self, state: RunState) -> None:
        state.wall_time_s = self._wall_before + time.perf_counter() - self._start

    # -- the run ----------------------------------------------------------------------------------
    def fit(self, resume: bool = False, callback: Callable[[dict[str, Any]], None] | None = None,
            overwrite: bool = False) -> TrainResult:
        """Train; with ``resume=True`` continue from ``checkpoint_dir/checkpoint.pt`` if it exists.

        A ``checkpoint_dir`` that already holds a checkpoint.pt is an error unless ``resume=True``
        (continue that run) or ``overwrite=True`` (discard it: it is deleted once the run is set up), so
        an earlier run is never replaced silently. ``callback(entry)`` is called after every epoch (after
        the checkpoint is written) with the epoch's history entry. Raises ValueError on bad settings or
        that existing checkpoint, CheckpointError on an unusable or incompatible checkpoint, RuntimeError
        if the loss becomes NaN or infinite. Runs under ``limit_threads(config.threads)``.
        """
        with limit_threads(self.config.threads):
            return self._fit(resume, callback, overwrite)

    def _check_output(self, resume: bool, overwrite: bool) -> None:
        """ValueError for resume/overwrite without their checkpoint_dir, or an earlier run's checkpoint that
        neither flag allows to touch."""
        path = self.checkpoint_path
        if resume and overwrite:
            raise ValueError("resume=True and overwrite=True exclude each other: continue the run in "
                             "checkpoint_dir, or replace it")
        if resume and path is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        if self.config.stop_after is not None and path is None:
            raise ValueError("stop_after needs a checkpoint_dir (the paused run is continued from it)")
        if path is not None and path.exists() and not (resume or overwrite):
            raise ValueError(f"checkpoint_dir {path.parent} already holds {CHECKPOINT_NAME} from an earlier run: "
                             f"pass resume=True to continue it or overwrite=True to replace it")

    def _fit(self, resume: bool, callback: Callable[[dict[str, Any]], None] | None, overwrite: bool) -> TrainResult:
        from tqdm.auto import tqdm

        self._check_output(resume, overwrite)
        self._start = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._data(self._prepare_model())
        stages = self.scheme.stages(self.model)
        if overwrite and self.checkpoint_path is not None:
            self.checkpoint_path.unlink(missing_ok=True)
        state = (self._restore(stages) if resume else None) or self._initial_state()
        self._wall_before = float(state.wall_time_s)
        bar = tqdm(total=len(stages) * self.config.epochs, initial=state.global_epoch, unit="epoch",
                   desc=f"train {getattr(self.model, 'family', 'model')}", file=sys.stderr, leave=False,
                   disable=not self.config.progress)
        paused = False
        try:
            while not state.finished and state.stage_index < len(stages) and not paused:
                paused = self._stage(stages, state, bar, callback)
            if not state.finished:  # paused, or the last stage has just ended
                ev = self._validate()
                state.final = {"val_nmse_db": ev["nmse_db"], "val_objective": ev["objective"]}
                if not paused:
                    state.finished = True
                    self._tick(state)
                    self._save(stages, state, None)
        finally:
            bar.close()
        self.model.eval()
        return self._result(state, paused)

    def _initial_state(self) -> RunState:
        ev = self._validate()
        return RunState(history=[{"epoch": 0, "stage": None, "stage_name": "initial", "target_layer": None, "lr": None,
                                  "train_loss": None, "train_nmse_db": None, "val_nmse_db": ev["nmse_db"],
                                  "val_objective": ev["objective"], "monitor": None, "improved": None, "time_s": 0.0}])

    # -- one stage --------------------------------------------------------------------------------
    def _stage(self, stages: list[Stage], state: RunState, bar: Any,
               callback: Callable[[dict[str, Any]], None] | None) -> bool:
        """Run the current stage (or the rest of it) to its end; True if the session pauses in it."""
        cfg = self.config
        stage = stages[state.stage_index]
        opt, rows = self._optimizer(stage)
        if state.epoch_in_stage == 0 and state.stage_start is None:
            self._begin_stage(state, stage)
        elif state.optimizer is not None:
            self._load_optimizer(opt, state.optimizer, stage)
        state.optimizer = None
        while state.epoch_in_stage < cfg.epochs and not state.stage_stopped:
            entry = self._epoch(state, stage, opt, rows)
            paused = self._pauses(state, len(stages))
            if state.global_epoch % cfg.checkpoint_every == 0 or paused:
                self._save(stages, state, opt)
            bar.update(1)
            bar.set_postfix_str(_postfix(stage, entry["monitor"], self.scheme.supervised))
            if callback is not None:
                callback(entry)
            if paused:
                return True
        if cfg.restore_best and state.best is not None:
            self.model.load_state_dict(state.best)
        state.end_stage(stage.describe())
        return False

    def _begin_stage(self, state: RunState, stage: Stage) -> None:
        state.stage_start = state.stage_best = self._monitor(self._validate(), stage)
        state.stage_best_epoch = state.global_epoch
        state.stage_bad = 0
        state.best = self._state_copy() if self.config.restore_best else None

    def _pauses(self, state: RunState, n_stages: int) -> bool:
        """Whether the session stops here: stop_after is reached and epochs of the run remain."""
        cfg = self.config
        return cfg.stop_after is not None and state.global_epoch >= cfg.stop_after and (
            state.epoch_in_stage < cfg.epochs and not state.stage_stopped or state.stage_index + 1 < n_stages)

    # -- one epoch --------------------------------------------------------------------------------
    def _epoch(self, state: RunState, stage: Stage, opt: torch.optim.Optimizer,
               rows: list[tuple[nn.Parameter, torch.Tensor]]) -> dict[str, Any]:
        """Train one epoch, validate, update early stopping; returns the epoch's history entry."""
        t0 = time.perf_counter()
        lr = self._set_lr(opt, stage, state.epoch_in_stage)
        epoch = state.global_epoch + 1
        train_loss, train_db = self._train_pass(stage, opt, rows, epoch)
        ev = self._validate()
        monitor = self._monitor(ev, stage)
        improved = self._early_stopping(state, monitor, epoch)
        state.epoch_in_stage += 1
        state.global_epoch = epoch
        entry = {"epoch": epoch, "stage": state.stage_index, "stage_name": stage.name,
                 "target_layer": stage.target_layer, "lr": lr, "train_loss": train_loss,
                 "train_nmse_db": train_db, "val_nmse_db": ev["nmse_db"], "val_objective": ev["objective"],
                 "monitor": monitor, "improved": improved, "time_s": time.perf_counter() - t0}
        state.history.append(entry)
        self._tick(state)
        return entry

    def _train_pass(self, stage: Stage, opt: torch.optim.Optimizer, rows: list[tuple[nn.Parameter, torch.Tensor]],
                    epoch: int) -> tuple[float, list[float] | None]:
        """The optimizer steps of one epoch: mean loss and per-layer training NMSE (dB) over its batches."""
        cfg = self.config
        trainable = [spec.param for spec in stage.params]
        self.model.train()
        loss_sum, steps = 0.0, 0
        errors = LayerNMSE()
        for step, batch in enumerate(self._batches()):
            opt.zero_grad(set_to_none=True)
            traj = self.model(batch.y, trajectory=True)
            loss = self.scheme.loss(traj, batch, self.problem, stage)
            if not bool(torch.isfinite(loss)):
                raise RuntimeError(f"training loss is {float(loss.detach())} at epoch {epoch}, step {step + 1} "
                                   f"(stage {stage.name!r}); lower the learning rate or set grad_clip")
            loss.backward()
            for p, m in rows:
                if p.grad is not None:
                    p.grad.masked_fill_(m == 0, 0.0)
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            before = [p.detach().clone() for p, _ in rows]
            opt.step()
            with torch.no_grad():
                for (p, m), old in zip(rows, before):
                    p.copy_(torch.where(m == 1, p, torch.where(m == 0, old, old + m * (p - old))))
                if self.constraint is not None:
                    self.constraint(self.model)
            loss_sum += float(loss.detach())
            steps += 1
            if batch.x is not None:
                errors.add(traj, batch.x)
        return loss_sum / max(steps, 1), errors.nmse_db() if errors.norm > 0 else None

    def _early_stopping(self, state: RunState, monitor: float, epoch: int) -> bool:
        """Record the epoch's monitored value (best value and parameters, patience); True if it improved."""
        cfg = self.config
        improved = bool(monitor < state.stage_best - cfg.min_delta)
        if improved:
            state.stage_best, state.stage_best_epoch, state.stage_bad = monitor, epoch, 0
            if cfg.restore_best:
                state.best = self._state_copy()
        else:
            state.stage_bad += 1
        if cfg.patience is not None and state.stage_bad >= cfg.patience:
            state.stage_stopped = True
        return improved

    # -- checkpoints -------------------------------------------------------------------------------
    def _training_meta(self, stages: list[Stage]) -> dict[str, Any]:
        return {"scheme": self.scheme.name, "scheme_settings": self.scheme.settings(),
                "settings": self.config.settings(), "stages": [s.describe() for s in stages]}

    def _save(self, stages: list[Stage], state: RunState, opt: torch.optim.Optimizer | None) -> None:
        """Write the resumable checkpoint (with a checkpoint_dir): model, run state, optimizer, generators."""
        path = self.checkpoint_path
        if path is None:
            return
        state.optimizer = None if opt is None else opt.state_dict()
        state.numpy_rng = self.train_rng.bit_generator.state
        state.torch_rng = self.torch_gen.get_state()
        tensors: dict[str, torch.Tensor] = {}
        resume = state.to_dict(tensors)
        save_checkpoint(path, self.model, problem=self.problem, training=self._training_meta(stages),
                        seed=self.config.seed, resume=resume, state_tensors=tensors)

    def _restore(self, stages: list[Stage]) -> RunState | None:
        """The checkpoint's run state, with the model and both generators restored; None without a checkpoint."""
        path = self.checkpoint_path
        if path is None or not path.exists():
            return None
        ckpt = load_checkpoint(path, map_location=self.device)
        try:
            state = RunState.from_dict(ckpt.resume, ckpt.state_tensors)
        except CheckpointError as err:
            raise CheckpointError(f"{ckpt.path}: cannot resume: {err}") from None
        self._check_compatible(ckpt, stages)
        self._check_position(ckpt, state, stages)
        restore_state(self.model, ckpt)
        try:
            self.train_rng.bit_generator.state = state.numpy_rng
            self.torch_gen.set_state(state.torch_rng.to("cpu"))
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise CheckpointError(f"{ckpt.path}: cannot resume: the stored generator states are unusable ({err}); "
                                  f"re-create the checkpoint (start the run again)") from None
        return state

    def _check_position(self, ckpt: Any, state: RunState, stages: list[Stage]) -> None:
        """CheckpointError unless the run state fits this run's stages and epochs and the model's tensors."""
        def refuse(what: str) -> CheckpointError:
            return CheckpointError(f"{ckpt.path}: cannot resume: the trainer state does not fit the run ({what}); "
                                   f"re-create the checkpoint (start the run again)")

        n, epochs = len(stages), self.config.epochs
        if state.stage_index > n or (state.finished and state.stage_index != n):
            raise refuse(f"stage_index {state.stage_index} of {n} stages, finished={state.finished}")
        if state.stage_index < n and state.epoch_in_stage > epochs:
            raise refuse(f"epoch_in_stage {state.epoch_in_stage} > epochs {epochs}")
        for i, done in enumerate(state.stages_done):
            described = _json_roundtrip(stages[i].describe())
            if done["epochs_run"] > epochs or any(done.get(k) != v for k, v in described.items()):
                raise refuse(f"finished stage {i} is not stage {stages[i].name!r} run for at most {epochs} epochs")
        if state.best is not None:
            own = self.model.state_dict()
            if set(state.best) != set(own) or any(state.best[k].shape != own[k].shape for k in own):
                raise refuse("its best parameters do not match the model's tensors")

    def _load_optimizer(self, opt: torch.optim.Optimizer, saved: dict[str, Any], stage: Stage) -> None:
        """Load a stored optimizer state into ``opt`` (CheckpointError if it does not fit the stage)."""
        try:
            opt.load_state_dict(saved)
            fits = all(not isinstance(v, torch.Tensor) or v.ndim == 0 or v.shape == p.shape
                       for group in opt.param_groups for p in group["params"] for v in opt.state.get(p, {}).values())
        except (KeyError, RuntimeError, TypeError, ValueError):
            fits = False
        if not fits:
            raise CheckpointError(f"{self.checkpoint_path}: cannot resume: the stored optimizer state does not fit "
                                  f"stage {stage.name!r}; re-create the checkpoint (start the run again)")

    def _check_compatible(self, ckpt: Any, stages: list[Stage]) -> None:
        where = f"{ckpt.path}: "
        family = getattr(self.model, "family", type(self.model).__name__)
        if ckpt.family != family:
            raise CheckpointError(f"{where}cannot resume: the checkpoint holds a {ckpt.family!r} model, not {family!r}")
        config = self.model.config() if hasattr(self.model, "config") else None
        if config is not None and ckpt.config != _json_roundtrip(config):
            raise CheckpointError(f"{where}cannot resume: model config differs ({ckpt.config} vs {config})")
        if ckpt.problem_family != self.problem.name or ckpt.problem_params != _json_roundtrip(self.problem.params()):
            raise CheckpointError(f"{where}cannot resume: the problem differs ({ckpt.problem_family} "
                                  f"{ckpt.problem_params} vs {self.problem.name} {self.problem.params()})")
        old = ckpt.training
        if not isinstance(old, dict) or not isinstance(old.get("settings"), dict):
            raise CheckpointError(f"{where}cannot resume: the file's training section is not a trainer's (no "
                                  f"settings); re-create the checkpoint (start the run again)")
        if old.get("scheme") != self.scheme.name or old.get("scheme_settings") != _json_roundtrip(self.scheme.settings()):
            raise CheckpointError(f"{where}cannot resume: scheme differs ({old.get('scheme')} "
                                  f"{old.get('scheme_settings')} vs {self.scheme.name} {self.scheme.settings()})")
        mine = _json_roundtrip(self.config.settings())
        theirs = old["settings"]
        diff = sorted(k for k in set(mine) | set(theirs)
                      if k not in RESUME_FREE and mine.get(k) != theirs.get(k))
        if diff:
            detail = ", ".join(f"{k}: {theirs.get(k)!r} -> {mine.get(k)!r}" for k in diff)
            raise CheckpointError(f"{where}cannot resume with different settings ({detail})")
        if old.get("stages") != _json_roundtrip([s.describe() for s in stages]):
            raise CheckpointError(f"{where}cannot resume: the training stages differ")

    def _result(self, state: RunState, paused: bool) -> TrainResult:
        history = state.history
        last = [h["val_nmse_db"][-1] for h in history if h["val_nmse_db"] is not None]
        finite = [v for v in last if v == v]
        peak, kind = peak_memory(self.device)
        return TrainResult(
            model=self.model, scheme=self.scheme.name, settings=self.config.settings(), history=history,
            stages=state.stages_done, best_val_nmse_db=min(finite) if finite else None,
            final_val_nmse_db=state.final["val_nmse_db"], final_val_objective=state.final["val_objective"],
            epochs_run=state.global_epoch, stopped_early=any(s["stopped_early"] for s in state.stages_done),
            wall_time_s=float(state.wall_time_s), peak_memory_bytes=peak, peak_memory_kind=kind,
            checkpoint_path=self.checkpoint_path, scheme_settings=self.scheme.settings(), paused=paused)


def _json_roundtrip(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _postfix(stage: Stage, monitor: float, supervised: bool) -> str:
    what = f"val NMSE(x_{stage.target_layer}) {monitor:.2f} dB" if supervised else f"val F(x_K) {monitor:.4g}"
    return f"{stage.name} | {what}"


def train(
    model: nn.Module,
    problem: Problem | None = None,
    scheme: str | Scheme = "end-to-end",
    *,
    loss: str | None = None,
    weights: list[float] | None = None,
    lr_decay: tuple[float, ...] | None = None,
    layer_decay: float | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callback: Callable[[dict[str, Any]], None] | None = None,
    constraint: Callable[[nn.Module], None] | None = None,
    **settings: Any,
) -> TrainResult:
    """Train ``model`` (in place) on ``problem`` (default ``model.problem``) with a scheme.

    ``scheme``: "end-to-end", "multi-loss", "layer-wise", "unsupervised" or a Scheme; scheme options:
    ``loss`` ("nmse" or "mse"; supervised schemes), ``weights`` (multi-loss), ``lr_decay`` and
    ``layer_decay`` (layer-wise). ``settings`` are the fields of TrainConfig (epochs, lr, batch_size,
    steps_per_epoch, train_size, val_size, patience, lr_schedule, grad_clip, seed, device, dtype,
    checkpoint_dir, checkpoint_every, progress, ...). ``resume=True`` continues from
    ``checkpoint_dir/checkpoint.pt`` bit-exactly (and starts afresh when there is none yet);
    ``overwrite=True`` replaces an earlier run's checkpoint there, which is otherwise an error
    (``Trainer.fit``). ``constraint(model)``: a projection applied in place before training and after every
    optimizer step (e.g. ``proofs_check.certified_lista.ListaRegion``; issue 18), so every validated, saved and
    returned state is feasible. Returns a TrainResult.
    """
    unknown = sorted(set(settings) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown training settings: {', '.join(unknown)}")
    options = {k: v for k, v in dict(loss=loss, weights=weights, lr_decay=lr_decay, layer_decay=layer_decay).items()
               if v is not None}
    if isinstance(scheme, Scheme) and options:
        raise ValueError("scheme options (loss, weights, lr_decay, layer_decay) go into the Scheme instance")
    if not isinstance(scheme, Scheme):
        allowed = {"end-to-end": {"loss"}, "multi-loss": {"loss", "weights"},
                   "layer-wise": {"loss", "lr_decay", "layer_decay"}, "unsupervised": set()}
        if scheme in allowed and set(options) - allowed[scheme]:
            bad = ", ".join(sorted(set(options) - allowed[scheme]))
            raise ValueError(f"option(s) {bad} do not apply to scheme {scheme!r}")
    trainer = Trainer(model, problem, scheme, TrainConfig(**settings), constraint=constraint, **options)
    return trainer.fit(resume=resume, callback=callback, overwrite=overwrite)
