"""Safe checkpoints: tensors plus JSON metadata in one torch file, loaded with ``weights_only=True`` only.

File layout (``torch.save`` of a plain dict, zip format)::

    {"format":   "unfoldkit-checkpoint",
     "metadata": "<JSON text>",              # architecture, problem, training, versions, tensor list
     "model":    {name: Tensor},             # model.state_dict() (parameters and buffers), on CPU
     "state":    {name: Tensor},             # optional trainer state (optimizer moments, torch RNG, best)
     "sha256":   "<hex>"}                    # integrity check over the metadata text and every tensor

The metadata JSON (canonical text: sorted keys, compact separators, ASCII) holds: ``format``,
``format_version``; ``model`` (family, class, config from ``model.config()``, num_layers, dtype);
``problem`` (family and ``params()``); ``training`` (scheme and settings, or null); ``seed``; ``versions``
(unfoldkit from importlib.metadata, torch, numpy, python); ``created_utc``; ``tensors`` ("group/name" ->
dtype and shape); ``resume`` (the JSON part of the trainer's ``RunState.to_dict``, or null). ``sha256``
(``checkpoint_digest``) is the SHA-256 of the format marker, the metadata text exactly as stored and the
tensor digest (``tensor_digest``: every tensor's group/name, dtype, shape and raw bytes), so one check
covers everything in the file, trainer state included.

A checkpoint is data, never code: it is read with ``torch.load(path, weights_only=True)`` and nothing
else, so a file holding pickled objects other than tensors and plain containers is refused before any
of it runs. Loading then checks, in order: the layout, the integrity hash, and the metadata against its
schema (types, ranges, finite values, the stored dtype and shape of every tensor, finite parameters).
Every failure (missing, truncated or corrupt file, pickled code, not an unfoldkit file, older or newer
format, integrity failure, invalid metadata, wrong architecture, wrong tensor names or shapes) raises
CheckpointError, a ValueError whose message names the file, the problem and the fix. The hash detects
corruption and edits; it is not a signature (whoever can write the file can recompute it), which is why
the metadata is also validated on its own.
"""
from __future__ import annotations

import hashlib
import json
import math
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
#: version 2: one integrity hash over metadata and tensors (version 1 hashed the tensors only; refused)
FORMAT_VERSION = 2
#: the entries of the saved dict
_ENTRIES = ("format", "metadata", "model", "state", "sha256")


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


def canonical_json(obj: Any) -> str:
    """The metadata's canonical JSON text: sorted keys, no spaces, ASCII only (what the digest covers)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def checkpoint_digest(metadata_text: str, groups: Mapping[str, Mapping[str, torch.Tensor]]) -> str:
    """The integrity hash of a checkpoint (hex SHA-256): the format marker, the metadata text exactly as
    stored and ``tensor_digest(groups)``, each length-prefixed. Any change to the metadata or a tensor
    changes it."""
    h = hashlib.sha256()
    for part in (FORMAT.encode(), metadata_text.encode("utf-8", "surrogatepass"), tensor_digest(groups).encode()):
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


def _dtype_from_name(name: Any, where: str = "", label: str = "model.dtype") -> torch.dtype:
    try:
        dtype = dtype_from_name(name) if isinstance(name, str) else None
    except ValueError:
        dtype = None
    if dtype is None:
        raise CheckpointError(f"{where}invalid metadata: {label} is {_show(name)}, not a torch dtype name such as "
                              f"'float32'; re-create the checkpoint")
    return dtype


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


def _non_finite(groups: Mapping[str, Mapping[str, torch.Tensor]]) -> str | None:
    """The first "group/name" of a parameter tensor holding NaN or inf (the model's tensors and the trainer
    state's ``best.*`` parameters), or None."""
    for group, tensors in groups.items():
        for name, t in sorted(tensors.items()):
            if (group == "model" or name.startswith("best.")) and (t.is_floating_point() or t.is_complex()) \
                    and not bool(torch.isfinite(t).all()):
                return f"{group}/{name}"
    return None


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
    are stored on CPU in their own dtype, so a round trip is bit-exact; ``sha256`` covers the metadata and
    every tensor. ValueError (nothing written) if a parameter holds NaN or inf. Returns the path.
    """
    path = Path(path)
    problem = problem if problem is not None else getattr(model, "problem", None)
    if not isinstance(problem, Problem):
        raise ValueError("save_checkpoint needs the problem (pass problem=..., or a model with a .problem)")
    model_tensors = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    state = {k: v.detach().to("cpu", copy=True) for k, v in (state_tensors or {}).items()}
    groups = {"model": model_tensors, "state": state}
    bad = _non_finite(groups)
    if bad is not None:
        raise ValueError(f"cannot save {path}: tensor {bad!r} holds NaN or inf values (training diverged? lower "
                         f"the learning rate or set grad_clip)")
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
    }
    try:
        text = canonical_json(meta)
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint metadata is not JSON-serialisable: {err}") from None
    payload = {"format": FORMAT, "metadata": text, "model": model_tensors, "state": state,
               "sha256": checkpoint_digest(text, groups)}
    return _atomic_torch_save(payload, path)


# ---- reading: layout, integrity, schema -------------------------------------------------------------

#: keys of the metadata and of its model and problem sections (exactly these)
_META_KEYS = ("format", "format_version", "model", "problem", "training", "seed", "versions", "created_utc",
              "tensors", "resume")
_MODEL_KEYS = ("family", "class", "config", "num_layers", "dtype")
_PROBLEM_KEYS = ("family", "params")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _invalid(where: str, what: str) -> CheckpointError:
    return CheckpointError(f"{where}invalid metadata: {what}; re-create the checkpoint")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _section(where: str, label: str, value: Any, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``value`` if it is a JSON object (with exactly ``keys`` when given), else CheckpointError."""
    if not isinstance(value, dict):
        raise _invalid(where, f"{label} must be a JSON object, got {_show(value)}")
    if keys is not None:
        missing = [k for k in keys if k not in value]
        extra = sorted(set(value) - set(keys))
        if missing or extra:
            raise _invalid(where, f"{label} " + (f"lacks {', '.join(missing)}" if missing else
                                                 f"has unexpected {', '.join(extra)}"))
    return value


def _name(where: str, label: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(where, f"{label} must be a non-empty string, got {_show(value)}")
    return value


def _finite_tree(where: str, label: str, value: Any) -> None:
    """CheckpointError if a number anywhere in the JSON ``value`` is NaN or infinite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _invalid(where, f"{label} is {value}, not a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite_tree(where, f"{label}.{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite_tree(where, f"{label}[{i}]", v)


def _check_tensor_list(where: str, listed: Any, groups: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """The metadata's "group/name" -> {dtype, shape} must describe exactly the tensors in the file."""
    listed = _section(where, "tensors", listed)
    actual = {f"{g}/{k}": t for g, ts in groups.items() for k, t in ts.items()}
    if set(listed) != set(actual):
        missing, extra = sorted(set(actual) - set(listed)), sorted(set(listed) - set(actual))
        raise _invalid(where, f"tensors does not list the file's tensors (unlisted {missing}, absent {extra})")
    for key, t in sorted(actual.items()):
        entry = _section(where, f"tensors[{key!r}]", listed[key], ("dtype", "shape"))
        dtype = _dtype_from_name(entry["dtype"], where, f"tensors[{key!r}].dtype")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise _invalid(where, f"tensors[{key!r}].shape must be a list of non-negative integers, got {_show(shape)}")
        if dtype != t.dtype or tuple(shape) != tuple(t.shape):
            raise _invalid(where, f"tensors[{key!r}] says {dtype_name(dtype)} {shape}, the tensor is "
                                  f"{dtype_name(t.dtype)} {list(t.shape)}")


def validate_metadata(where: str, meta: Any, groups: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Check checkpoint metadata against its schema and the file's tensors (CheckpointError, prefixed with
    ``where``, naming the first fault): exactly the known keys; the format and version; non-empty names;
    model.config and problem.params JSON objects of finite numbers; num_layers a positive integer (or
    null); dtype a floating torch dtype; seed a non-negative integer (or null); training and resume JSON
    objects or null; versions strings; ``tensors`` listing every tensor with its true dtype and shape; every
    parameter finite. The problem is validated further when it is rebuilt (``Checkpoint.make_problem``),
    the config when the model is (``load_model``) and ``resume`` by ``RunState.from_dict``."""
    meta = _section(where, "the metadata", meta, _META_KEYS)
    if meta["format"] != FORMAT or meta["format_version"] != FORMAT_VERSION:
        raise _invalid(where, f"format {_show(meta['format'])} version {_show(meta['format_version'])} is not "
                              f"{FORMAT!r} version {FORMAT_VERSION}")
    model = _section(where, "model", meta["model"], _MODEL_KEYS)
    _name(where, "model.family", model["family"])
    _name(where, "model.class", model["class"])
    _finite_tree(where, "model.config", _section(where, "model.config", model["config"]))
    k = model["num_layers"]
    if k is not None and not (_is_int(k) and k >= 1):
        raise _invalid(where, f"model.num_layers must be a positive integer or null, got {_show(k)}")
    if not _dtype_from_name(model["dtype"], where).is_floating_point:
        raise _invalid(where, f"model.dtype must be a floating-point dtype, got {_show(model['dtype'])}")
    problem = _section(where, "problem", meta["problem"], _PROBLEM_KEYS)
    _name(where, "problem.family", problem["family"])
    _finite_tree(where, "problem.params", _section(where, "problem.params", problem["params"]))
    for key in ("training", "resume"):
        if meta[key] is not None:
            _section(where, key, meta[key])
    seed = meta["seed"]
    if seed is not None and not (_is_int(seed) and seed >= 0):
        raise _invalid(where, f"seed must be a non-negative integer or null, got {_show(seed)}")
    versions = _section(where, "versions", meta["versions"])
    if not all(isinstance(v, str) for v in versions.values()) or not isinstance(meta["created_utc"], str):
        raise _invalid(where, "versions and created_utc must hold strings")
    _check_tensor_list(where, meta["tensors"], groups)
    bad = _non_finite(groups)
    if bad is not None:
        raise CheckpointError(f"{where}tensor {bad!r} holds NaN or inf values: the model is unusable; "
                              f"re-create the checkpoint")


def _tensor_dict(where: str, name: str, value: Any) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in value.items()):
        raise CheckpointError(f"{where}not an unfoldkit checkpoint: entry {name!r} is not a dict of tensors")
    return value


def _first_sentence(err: BaseException) -> str:
    """The first sentence of an exception's message (whole words, at most about 200 characters)."""
    text = " ".join(str(err).split()) or type(err).__name__
    text = text.split(". ")[0].rstrip(".")
    if len(text) > 200:
        text = text[:200].rsplit(" ", 1)[0] + " ..."
    return text


def _stated_version(text: str) -> int | None:
    """The format_version the metadata text states, if it can be read at all."""
    try:
        meta = json.loads(text)
    except ValueError:
        return None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    return version if _is_int(version) else None


def _integrity_failure(where: str, text: str) -> CheckpointError:
    """The error for a file whose hash does not match: a newer or older format, or modified/corrupted."""
    version = _stated_version(text)
    if version is not None and version > FORMAT_VERSION:
        return CheckpointError(f"{where}checkpoint format version {version} is newer than this unfoldkit reads "
                               f"({FORMAT_VERSION}); upgrade unfoldkit")
    if version is not None and version < FORMAT_VERSION:
        return CheckpointError(f"{where}checkpoint format version {version} was written by an older unfoldkit and "
                               f"is no longer read (its integrity check did not cover the metadata); re-create it")
    return CheckpointError(f"{where}integrity check failed: the file was modified or corrupted; re-create it")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and verify a checkpoint with ``torch.load(path, weights_only=True, map_location=...)``.

    Raises CheckpointError for a missing, empty, truncated or corrupt file, a file holding pickled code
    (refused by the weights-only unpickler before it can run), a file that is not an unfoldkit
    checkpoint, an older or newer format version, a failed integrity check (``sha256`` over metadata and
    tensors) or metadata that breaks the schema (``validate_metadata``).
    """
    path = Path(path)
    where = f"{path}: "
    if not path.is_file():
        raise CheckpointError(f"{where}no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{where}empty file (truncated checkpoint); re-create it")
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
        raise CheckpointError(f"{where}truncated or corrupt checkpoint (unpickling failed: {_first_sentence(err)}); "
                              f"re-create it") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001 - torch raises RuntimeError, OSError, KeyError, EOFError...
        raise CheckpointError(f"{where}truncated or corrupt checkpoint (torch cannot read it: {type(err).__name__}: "
                              f"{_first_sentence(err)}); re-create it") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{where}not an unfoldkit checkpoint (no {FORMAT!r} marker; a bare state dict "
                              f"or another program's file?)")
    text = obj.get("metadata")
    if not isinstance(text, str):
        raise CheckpointError(f"{where}not an unfoldkit checkpoint: metadata is missing")
    groups = {"model": _tensor_dict(where, "model", obj.get("model")),
              "state": _tensor_dict(where, "state", obj.get("state", {}))}
    if set(obj) != set(_ENTRIES) or obj["sha256"] != checkpoint_digest(text, groups):
        raise _integrity_failure(where, text)
    try:
        meta = json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"{where}corrupt metadata (invalid JSON: {err}); re-create it") from None
    validate_metadata(where, meta, groups)
    return Checkpoint(meta, dict(groups["model"]), dict(groups["state"]), path)


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
    dtype = _dtype_from_name(ckpt.metadata["model"]["dtype"], where)
    if _model_dtype(model) != dtype:
        model = model.to(dtype)
        if hasattr(model, "model_dtype"):
            model.model_dtype = dtype
    restore_state(model, ckpt)
    return model.to(map_location)
