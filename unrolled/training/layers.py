"""Which parameters belong to which layer of an unfolded model (needed by layer-wise training).

A model following the base contract (``unrolled/models/base.py``) has K = ``num_layers`` layers;
``model._layer(k, ...)`` (k = 0..K-1) maps x_k to x_{k+1}. ``layer_parameters(model, k)`` returns the
learned parameters that layer uses, by these rules (first match wins):

1. the model's own method ``layer_parameters(k) -> Iterable[tuple[str, int | None]]``, if it defines
   one: pairs (parameter name as in ``named_parameters()``, row index or None for the whole tensor);
2. an entry of an ``nn.ModuleList`` / ``nn.ParameterList`` of length K: entry k (all parameters of
   module k, or parameter k) belongs to layer k;
3. a parameter that ``parameter_info()`` marks untied, with leading dimension K: row k belongs to
   layer k (the default ``parameter_info`` marks exactly these tensors untied); marked untied with
   leading dimension K-1: row j belongs to layer j+1 (a per-layer value that layer 0 does not use,
   e.g. FISTA momentum with x_{-1} = x_0, or LISTA's W_2 x_0 with x_0 = 0);
4. any other learned parameter is tied (shared by all layers): it belongs to layer 0, the first layer
   that uses it; so layer-wise training trains it from its first stage on, as the LISTA-CPSS code does
   (a variable joins the trained set in the first layer whose variable list holds it).

Parameters with ``requires_grad=False`` are not learned and belong to no layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from torch import nn

from unfoldkit.unrolled.validation import nonnegative_int


@dataclass(frozen=True)
class LayerParam:
    """A learned parameter (or one row of it) used by one layer.

    ``index`` is None when the whole tensor belongs to the layer, else the row ``param[index]`` of a
    tensor whose leading dimension is the number of layers.
    """

    name: str
    param: nn.Parameter
    index: int | None


def _per_layer_entries(model: nn.Module, num_layers: int) -> dict[str, int]:
    """Parameter name -> layer for entries of ModuleLists / ParameterLists of length ``num_layers``."""
    owner: dict[str, int] = {}
    for mod_name, module in model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.ParameterList)) or len(module) != num_layers:
            continue
        prefix = f"{mod_name}." if mod_name else ""
        for k in range(num_layers):
            if isinstance(module, nn.ParameterList):
                owner.setdefault(f"{prefix}{k}", k)
            else:
                for p_name, _ in module[k].named_parameters():
                    owner.setdefault(f"{prefix}{k}.{p_name}", k)
    return owner


def _untied_names(model: nn.Module, num_layers: int) -> dict[str, int]:
    """Tensors whose rows are per-layer -> offset (row j is layer j + offset): untied per
    parameter_info() with leading dimension K (offset 0) or K-1 (offset 1)."""
    params = dict(model.named_parameters())
    info = getattr(model, "parameter_info", None)
    names: dict[str, int] = {}
    if callable(info):
        for item in info():
            p = params.get(item.name)
            if p is None or item.tied or p.ndim < 1:
                continue
            if p.shape[0] == num_layers:
                names[item.name] = 0
            elif p.shape[0] == num_layers - 1:
                names[item.name] = 1
    else:
        names = {n: 0 for n, p in params.items() if p.ndim >= 1 and p.shape[0] == num_layers}
    return names


def _from_model_hook(model: nn.Module, k: int, num_layers: int) -> list[LayerParam]:
    params = dict(model.named_parameters())
    out = []
    for entry in model.layer_parameters(k):  # type: ignore[attr-defined]
        try:
            name, index = entry
        except (TypeError, ValueError):
            raise ValueError(f"{type(model).__name__}.layer_parameters({k}) must yield (name, index) pairs, "
                             f"got {entry!r}") from None
        if name not in params:
            raise ValueError(f"{type(model).__name__}.layer_parameters({k}) names {name!r}, which is not a "
                             f"parameter of the model")
        p = params[name]
        if index is not None:
            if p.ndim < 1 or not 0 <= index < p.shape[0]:
                raise ValueError(f"{type(model).__name__}.layer_parameters({k}): row {index!r} out of range "
                                 f"for {name!r} of shape {tuple(p.shape)}")
            index = int(index)
        if p.requires_grad:
            out.append(LayerParam(name, p, index))
    return out


def layer_parameters(model: nn.Module, k: int) -> list[LayerParam]:
    """The learned parameters (or rows of them) that layer ``k`` (0-based, x_k -> x_{k+1}) uses.

    See the module docstring for the rules; tied parameters are reported for layer 0 only. Raises
    ValueError if ``k`` is not in 0..K-1 or a model hook names an unknown parameter.
    """
    num_layers = _num_layers(model)
    k = nonnegative_int("k", k)
    if k >= num_layers:
        raise ValueError(f"k must lie in 0..{num_layers - 1}, got {k}")
    if callable(getattr(model, "layer_parameters", None)):
        return _from_model_hook(model, k, num_layers)
    owner = _per_layer_entries(model, num_layers)
    untied = _untied_names(model, num_layers) if num_layers > 1 else {}
    out = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name in owner:
            if owner[name] == k:
                out.append(LayerParam(name, p, None))
        elif name in untied:
            if k - untied[name] >= 0:
                out.append(LayerParam(name, p, k - untied[name]))
        elif k == 0:
            out.append(LayerParam(name, p, None))
    return out


def layer_partition(model: nn.Module) -> list[list[LayerParam]]:
    """``layer_parameters(model, k)`` for every k = 0..K-1 (index k of the returned list)."""
    return [layer_parameters(model, k) for k in range(_num_layers(model))]


def unassigned_parameters(model: nn.Module) -> list[str]:
    """Names of learned parameters that no layer claims (should be empty; a model hook may miss some)."""
    claimed: set[str] = set()
    for entries in layer_partition(model):
        claimed.update(e.name for e in entries)
    return [n for n, p in model.named_parameters() if p.requires_grad and n not in claimed]


def _num_layers(model: nn.Module) -> int:
    num_layers = getattr(model, "num_layers", None)
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"model must have a positive integer attribute num_layers, got {num_layers!r}")
    return num_layers


def _iter_names(entries: Iterable[LayerParam]) -> list[str]:
    return [e.name if e.index is None else f"{e.name}[{e.index}]" for e in entries]


def describe_layers(model: nn.Module) -> list[list[str]]:
    """Human-readable partition: for each layer k, names like ``'step[3]'`` or ``'layers.3.W'``."""
    return [_iter_names(entries) for entries in layer_partition(model)]
