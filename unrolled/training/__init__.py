"""Training schemes, the trainer and safe checkpoints.

- ``schemes``: end-to-end, multi-loss (deep supervision), layer-wise (greedy, LISTA-CPSS recipe),
  unsupervised (the problem's objective as loss); NMSE / MSE per-layer losses.
- ``layers``: which parameters belong to which layer (``layer_parameters(model, k)``).
- ``trainer``: ``train(model, problem, scheme=..., ...) -> TrainResult``, seeded, resumable (an earlier
  run's checkpoint needs ``resume=True`` or ``overwrite=True``); its progress is a ``run_state.RunState``.
- ``evaluation``: ``evaluate(model, problem, batch)``, per-layer NMSE, NMSE dB and objective.
- ``checkpoint``: tensors plus JSON metadata under one integrity hash, metadata checked against its schema,
  atomic writes, ``torch.load(weights_only=True)`` only.
See docs/training.md.
"""
from unfoldkit.unrolled.training.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    checkpoint_digest,
    load_checkpoint,
    load_model,
    restore_state,
    save_checkpoint,
    tensor_digest,
    validate_metadata,
)
from unfoldkit.unrolled.training.evaluation import evaluate
from unfoldkit.unrolled.training.layers import LayerParam, describe_layers, layer_parameters, unassigned_parameters
from unfoldkit.unrolled.training.schemes import (
    LOSSES,
    SCHEMES,
    EndToEnd,
    LayerWise,
    MultiLoss,
    ParamSpec,
    Scheme,
    Stage,
    Unsupervised,
    make_scheme,
    mse,
    nmse,
    to_db,
)
from unfoldkit.unrolled.training.trainer import (
    CHECKPOINT_NAME,
    LR_SCHEDULES,
    TrainConfig,
    Trainer,
    TrainResult,
    resolve_device,
    train,
)

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT_VERSION",
    "LOSSES",
    "LR_SCHEDULES",
    "SCHEMES",
    "Checkpoint",
    "CheckpointError",
    "EndToEnd",
    "LayerParam",
    "LayerWise",
    "MultiLoss",
    "ParamSpec",
    "Scheme",
    "Stage",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "Unsupervised",
    "checkpoint_digest",
    "describe_layers",
    "evaluate",
    "resolve_device",
    "layer_parameters",
    "load_checkpoint",
    "load_model",
    "make_scheme",
    "mse",
    "nmse",
    "restore_state",
    "save_checkpoint",
    "tensor_digest",
    "to_db",
    "train",
    "unassigned_parameters",
    "validate_metadata",
]
