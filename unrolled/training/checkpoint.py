"""Safe checkpoints: tensors plus JSON metadata in one torch file, loaded with ``weights_only=True`` only.

File layout (``torch.save`` of a plain dict, zip format)::

    {"format":   "unfoldkit-checkpoint",
     "metadata": "<JSON text>",              # architecture, problem, training, versions, sha256
     "model":    {name: Tensor},             # model.state_dict() (parameters and buffers), on CPU
     "state":    {name: Tensor}}             # optional trainer state (optimizer moments, torch RNG, best)

The metadata JSON holds: ``format_version``; ``model`` (family, class, config from ``model.config()``,
num_layers, dtype); ``problem`` (family and ``params()``); ``training`` (scheme and settings, or null);
``seed``; ``versions`` (unfoldkit from importlib.metadata, torch, numpy, python); ``tensors`` (name ->
dtype and shape); ``resume`` (the JSON part of the trainer's ``RunState.to_dict``, or null); ``sha256``:
the SHA-256 of the tensor payload, i.e. of every tensor's group/name, dtype, shape and raw bytes, in
sorted name order.

A checkpoint is data, never code: it is read with ``torch.load(path, weights_only=True)`` and nothing
else, so a file holding pickled objects other than tensors and plain containers is refused before any
of it runs. Every failure (missing, truncated or corrupt file, pickled code, not an unfoldkit file,
newer format, hash mismatch, wrong architecture, wrong tensor names or shapes) raises CheckpointError,
a ValueError whose message names the file and the problem. The hash detects corruption and edits; it is
not a signature (whoever can write the file can recompute it).
"""
from __future__ import annotations

import hashlib
import json
import pickle
import platform
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from unfoldkit.unrolled.dtypes import dtype_from_name, dtype_name
from unfoldkit.unrolled.io import atomic_write
from unfoldkit.unrolled.problems import make_problem
from unfoldkit.unrolled.problems.base import Problem

FORMAT = "unfoldkit-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: the message names the file and what is wrong with it."""


# ---- versions and hashing -------------------------------------------------------------------------


def package_version() -> str:
    """The installed unfoldkit version (importlib.metadata), or 'unknown' when not installed."""
    try:
        return importlib_metadata.version("unfoldkit")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _tensor_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return flat.view(torch.uint8).numpy().tobytes()


def tensor_digest(groups: Mapping[str, Mapping[str, torch.Tensor]]) -> str:
    """SHA-256 (hex) of tensor groups: for each "group/name" in sorted order, the name, dtype, shape
    and raw bytes, each length-prefixed (so no two payloads share a byte stream)."""
    h = hashlib.sha256()
    items = sorted((f"{g}/{name}", t) for g, tensors in groups.items() for name, t in tensors.items())
    for key, t in items:
        for part in (key.encode(), str(t.dtype).encode(), repr(tuple(t.shape)).encode(), _tensor_bytes(t)):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
    return h.hexdigest()


# ---- JSON <-> tensors for nested state (optimizer state dicts, RNG states) -----------------------


def split_tensors(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-serialisable copy of ``obj`` whose tensors are moved into ``tensors`` (keys from ``prefix``).

    Tensors become {"__tensor__": key}, tuples {"__tuple__": [...]}, dicts with non-string keys
    {"__items__": [[k, v], ...]}; lists, str, int, float, bool and None pass through. The inverse is
    ``join_tensors``.
    """
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu", copy=True)
        return {"__tensor__": prefix}
    if isinstance(obj, tuple):
        return {"__tuple__": [split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: split_tensors(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[split_tensors(k, f"{prefix}.k{i}", tensors), split_tensors(v, f"{prefix}.{i}", tensors)]
                              for i, (k, v) in enumerate(obj.items())]}
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    raise TypeError(f"cannot store a {type(obj).__name__} in checkpoint metadata (at {prefix!r})")


def join_tensors(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of ``split_tensors``: rebuild the nested object, taking tensors from ``tensors``."""
    if isinstance(obj, list):
        return [join_tensors(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            key = obj["__tensor__"]
            if key not in tensors:
                raise CheckpointError(f"checkpoint state refers to a missing tensor {key!r}")
            return tensors[key]
        if set(obj) == {"__tuple__"}:
            return tuple(join_tensors(v, tensors) for v in obj["__tuple__"])
        if set(obj) == {"__items__"}:
            return {join_tensors(k, tensors): join_tensors(v, tensors) for k, v in obj["__items__"]}
        return {k: join_tensors(v, tensors) for k, v in obj.items()}
    return obj


# ---- the checkpoint object ------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A loaded, verified checkpoint: metadata, the model's tensors and the optional trainer state."""

    metadata: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    state_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    path: Path | None = None

    @property
    def family(self) -> str:
        """Architecture family (a key of ``unfoldkit.unrolled.models.MODELS``)."""
        return self.metadata["model"]["family"]

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments of the model (``model.config()``)."""
        return self.metadata["model"]["config"]

    @property
    def problem_family(self) -> str:
        """Problem family the model was trained on (a key of ``unrolled.problems.FAMILIES``)."""
        return self.metadata["problem"]["family"]

    @property
    def problem_params(self) -> dict[str, Any]:
        """The problem's ``params()``: ``make_problem(problem_family, **problem_params)`` rebuilds it."""
        return self.metadata["problem"]["params"]

    @property
    def training(self) -> dict[str, Any] | None:
        """Scheme and trainer settings, or None for a checkpoint saved outside training."""
        return self.metadata.get("training")

    @property
    def resume(self) -> dict[str, Any] | None:
        """The trainer's JSON state for resuming (``RunState.from_dict(resume, state_tensors)``), or None."""
        return self.metadata.get("resume")

    def make_problem(self) -> Problem:
        """Rebuild the problem the model was trained on (``make_problem(family, **params)``)."""
        try:
            return make_problem(self.problem_family, **self.problem_params)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{self._where()}cannot rebuild problem {self.problem_family!r} from "
                                  f"{self.problem_params}: {err}") from None

    def _where(self) -> str:
        return f"{self.path}: " if self.path is not None else ""


def _model_dtype(model: nn.Module) -> torch.dtype:
    dtype = getattr(model, "model_dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    for t in model.state_dict().values():
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def _dtype_from_name(name: str) -> torch.dtype:
    try:
        return dtype_from_name(name)
    except ValueError:
        raise CheckpointError(f"unknown dtype {name!r} in checkpoint metadata") from None


def _jsonable_config(model: nn.Module) -> dict[str, Any]:
    config_fn = getattr(model, "config", None)
    if not callable(config_fn):
        raise ValueError(f"{type(model).__name__} has no config() method: it cannot be checkpointed")
    config = config_fn()
    try:
        text = json.dumps(config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{type(model).__name__}.config() is not JSON-serialisable: {err}") from None
    return json.loads(text)


def _atomic_torch_save(obj: Any, path: Path) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)

    return atomic_write(path, write)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    problem: Problem | None = None,
    training: dict[str, Any] | None = None,
    seed: int | None = None,
    resume: dict[str, Any] | None = None,
    state_tensors: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model``'s state dict and JSON metadata to ``path`` atomically (temp file + os.replace).

    ``problem`` defaults to ``model.problem``; ``training`` describes the scheme and settings; ``resume``
    and ``state_tensors`` carry the trainer's state (``RunState.to_dict``: JSON part and tensors). Tensors
    are stored on CPU in their own dtype, so a round trip is bit-exact. Returns the path.
    """
    path = Path(path)
    problem = problem if problem is not None else getattr(model, "problem", None)
    if not isinstance(problem, Problem):
        raise ValueError("save_checkpoint needs the problem (pass problem=..., or a model with a .problem)")
    model_tensors = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    state = {k: v.detach().to("cpu", copy=True) for k, v in (state_tensors or {}).items()}
    groups = {"model": model_tensors, "state": state}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {
            "family": getattr(model, "family", type(model).__name__),
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "config": _jsonable_config(model),
            "num_layers": getattr(model, "num_layers", None),
            "dtype": dtype_name(_model_dtype(model)),
        },
        "problem": {"family": problem.name, "params": problem.params()},
        "training": training,
        "seed": seed,
        "versions": {"unfoldkit": package_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tensors": {f"{g}/{k}": {"dtype": dtype_name(t.dtype), "shape": list(t.shape)}
                    for g, ts in groups.items() for k, t in ts.items()},
        "resume": resume,
        "sha256": tensor_digest(groups),
    }
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint metadata is not JSON-serialisable: {err}") from None
    payload = {"format": FORMAT, "metadata": text, "model": model_tensors, "state": state}
    return _atomic_torch_save(payload, path)


def _tensor_dict(where: str, name: str, value: Any) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in value.items()):
        raise CheckpointError(f"{where}not an unfoldkit checkpoint: entry {name!r} is not a dict of tensors")
    return value


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and verify a checkpoint with ``torch.load(path, weights_only=True, map_location=...)``.

    Raises CheckpointError for a missing, empty, truncated or corrupt file, a file holding pickled code
    (refused by the weights-only unpickler before it can run), a file that is not an unfoldkit
    checkpoint, a newer format version, or a SHA-256 mismatch between tensors and metadata.
    """
    path = Path(path)
    where = f"{path}: "
    if not path.is_file():
        raise CheckpointError(f"{where}no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{where}empty file (truncated checkpoint)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, weights_only=True, map_location=map_location)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights only" in first.lower():
            raise CheckpointError(f"{where}refused: the file holds pickled objects other than tensors and plain "
                                  f"containers (it could run code when unpickled); checkpoints are loaded "
                                  f"with weights_only=True only") from None
        raise CheckpointError(f"{where}truncated or corrupt checkpoint (unpickling failed: {first})") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001 - torch raises RuntimeError, OSError, KeyError, EOFError...
        msg = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{where}truncated or corrupt checkpoint (not a readable torch file: "
                              f"{type(err).__name__}: {msg})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{where}not an unfoldkit checkpoint (no {FORMAT!r} marker; a bare state dict "
                              f"or another program's file?)")
    text = obj.get("metadata")
    if not isinstance(text, str):
        raise CheckpointError(f"{where}not an unfoldkit checkpoint: metadata is missing")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{where}corrupt metadata (invalid JSON: {err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}corrupt metadata (not a JSON object)")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{where}corrupt metadata (no format_version)")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{where}format version {version} is newer than this unfoldkit reads "
                              f"({FORMAT_VERSION}); upgrade unfoldkit")
    for key in ("model", "problem"):
        if not isinstance(meta.get(key), dict):
            raise CheckpointError(f"{where}corrupt metadata (no {key!r} section)")
    for key in ("family", "config"):
        if key not in meta["model"]:
            raise CheckpointError(f"{where}corrupt metadata (model.{key} missing)")
    for key in ("family", "params"):
        if key not in meta["problem"]:
            raise CheckpointError(f"{where}corrupt metadata (problem.{key} missing)")
    model_tensors = _tensor_dict(where, "model", obj.get("model"))
    state = _tensor_dict(where, "state", obj.get("state", {}))
    digest = tensor_digest({"model": model_tensors, "state": state})
    if digest != meta.get("sha256"):
        raise CheckpointError(f"{where}SHA-256 of the tensors ({digest[:12]}...) does not match the metadata "
                              f"({str(meta.get('sha256'))[:12]}...): the file was modified or corrupted")
    return Checkpoint(meta, dict(model_tensors), dict(state), path)


def restore_state(model: nn.Module, checkpoint: Checkpoint) -> nn.Module:
    """Copy a checkpoint's tensors into ``model`` after checking that they fit.

    Raises CheckpointError if the architecture family or the number of layers differs, if tensor names
    are missing or unexpected, or if a tensor's shape differs. Dtypes are converted as
    ``load_state_dict`` does (bit-exact when they match). Returns the model.
    """
    where = checkpoint._where()
    family = getattr(model, "family", type(model).__name__)
    if checkpoint.family != family:
        raise CheckpointError(f"{where}wrong architecture: the checkpoint holds a {checkpoint.family!r} model, "
                              f"not {family!r}")
    k_ckpt = checkpoint.metadata["model"].get("num_layers")
    k_model = getattr(model, "num_layers", None)
    if k_ckpt is not None and k_model is not None and k_ckpt != k_model:
        raise CheckpointError(f"{where}wrong architecture: the checkpoint has {k_ckpt} layers, the model {k_model}")
    own = model.state_dict()
    missing = sorted(set(own) - set(checkpoint.tensors))
    unexpected = sorted(set(checkpoint.tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{where}tensor names do not match the {family!r} model: missing {missing}, "
                              f"unexpected {unexpected}")
    for name, t in checkpoint.tensors.items():
        if tuple(t.shape) != tuple(own[name].shape):
            raise CheckpointError(f"{where}wrong shape for tensor {name!r}: {tuple(t.shape)} in the checkpoint, "
                                  f"{tuple(own[name].shape)} in the model")
    model.load_state_dict(checkpoint.tensors, strict=True)
    return model


def _registry() -> dict[str, type]:
    try:
        from unfoldkit.unrolled.models import MODELS  # local: the registry lives beside the models
    except ImportError:
        return {}
    return dict(MODELS)


def load_model(
    path: str | Path | Checkpoint,
    *,
    family: str | None = None,
    problem: Problem | None = None,
    models: Mapping[str, type] | None = None,
    map_location: str | torch.device = "cpu",
) -> nn.Module:
    """Rebuild a trained model from a checkpoint: ``MODELS[family](problem, **config)`` then its tensors.

    ``family``: the architecture the caller expects (CheckpointError if the file holds another);
    ``problem``: the problem to attach (default: rebuilt from the metadata; a given one must be of the same
    family); ``models``: the registry (default ``unfoldkit.unrolled.models.MODELS``). The model gets the
    checkpoint's dtype and lives on ``map_location``.
    """
    ckpt = path if isinstance(path, Checkpoint) else load_checkpoint(path, map_location=map_location)
    where = ckpt._where()
    if family is not None and family != ckpt.family:
        raise CheckpointError(f"{where}wrong architecture: the checkpoint holds a {ckpt.family!r} model, "
                              f"not {family!r}")
    registry = dict(models) if models is not None else _registry()
    if ckpt.family not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise CheckpointError(f"{where}unknown architecture {ckpt.family!r} (known: {known})")
    if problem is None:
        problem = ckpt.make_problem()
    elif problem.name != ckpt.problem_family:
        raise CheckpointError(f"{where}the model was trained on a {ckpt.problem_family!r} problem, "
                              f"not {problem.name!r}")
    try:
        model = registry[ckpt.family](problem, **ckpt.config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}cannot rebuild {ckpt.family!r} from its config {ckpt.config}: {err}") from None
    dtype = _dtype_from_name(ckpt.metadata["model"].get("dtype", "float32"))
    if _model_dtype(model) != dtype:
        model = model.to(dtype)
        if hasattr(model, "model_dtype"):
            model.model_dtype = dtype
    restore_state(model, ckpt)
    return model.to(map_location)
