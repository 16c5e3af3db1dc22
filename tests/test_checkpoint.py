"""Checkpoints: bit-exact round trips, metadata, atomic writes, and every bad file rejected safely: one
integrity check over metadata and tensors, and metadata validated against its schema."""
from __future__ import annotations

import json
import math
import os
import pickle
import random
import re

import pytest
import torch
from torch import nn

from unfoldkit.unrolled.models.base import UnfoldedModel
from unfoldkit.unrolled.operators import soft_threshold
from unfoldkit.unrolled.problems import LeastSquares, SparseRecovery
from unfoldkit.unrolled.training import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    load_model,
    restore_state,
    save_checkpoint,
    tensor_digest,
)
from unfoldkit.unrolled.training.checkpoint import canonical_json, checkpoint_digest, join_tensors, split_tensors


class TinyLISTA(UnfoldedModel):
    """Per-layer matrices (K, m, n) and thresholds (K,), a buffer, and a tied scalar."""

    family = "tiny-lista"

    def __init__(self, problem, num_layers, dtype="float32"):
        super().__init__(problem, num_layers, dtype)
        a = torch.as_tensor(problem.A, dtype=self.model_dtype) / problem.L
        self.W = nn.Parameter(a.expand(num_layers, -1, -1).clone())
        self.theta = nn.Parameter(torch.full((num_layers,), 0.01, dtype=self.model_dtype))
        self.scale = nn.Parameter(torch.ones((), dtype=self.model_dtype))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def _layer(self, k, x, y):
        a = self.problem.matrix(y)
        return soft_threshold(x + self.scale * (y - x @ a.T) @ self.W[k], self.theta[k])

    def config(self):
        return {"num_layers": self.num_layers, "dtype": str(self.model_dtype).removeprefix("torch.")}


class TinyGD(UnfoldedModel):
    family = "tiny-gd"

    def __init__(self, problem, num_layers, dtype="float32"):
        super().__init__(problem, num_layers, dtype)
        self.step = nn.Parameter(torch.full((num_layers,), 1.0 / problem.L, dtype=self.model_dtype))

    def _layer(self, k, x, y):
        return x - self.step[k] * self.problem.grad(x, y)

    def config(self):
        return {"num_layers": self.num_layers}


REGISTRY = {"tiny-lista": TinyLISTA, "tiny-gd": TinyGD}


@pytest.fixture(scope="module")
def problem():
    return SparseRecovery(m=12, n=24, sparsity=0.2, lam=0.05, seed=3)


def _randomized(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))
    if hasattr(model, "calls"):
        model.calls.fill_(7)
    return model


def _saved(tmp_path, problem, name="m.pt", dtype="float32", **kw):
    model = _randomized(TinyLISTA(problem, 3, dtype=dtype))
    path = save_checkpoint(tmp_path / name, model, **kw)
    return model, path


# ---- round trip ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_exact(tmp_path, problem, dtype):
    model, path = _saved(tmp_path, problem, dtype=dtype, seed=4, training={"scheme": "end-to-end"})
    ckpt = load_checkpoint(path)
    assert ckpt.family == "tiny-lista" and ckpt.metadata["model"]["dtype"] == dtype
    rebuilt = load_model(path, models=REGISTRY)
    assert rebuilt is not model
    own, other = model.state_dict(), rebuilt.state_dict()
    assert own.keys() == other.keys()
    for name in own:
        assert other[name].dtype == own[name].dtype
        assert torch.equal(other[name], own[name]), name
    y = problem.sample(5, 1, dtype=getattr(torch, dtype)).y
    assert torch.equal(model(y, trajectory=True), rebuilt(y, trajectory=True))
    target = _randomized(TinyLISTA(problem, 3, dtype=dtype), seed=9)
    restore_state(target, ckpt)
    assert all(torch.equal(target.state_dict()[k], own[k]) for k in own)


def test_metadata_contents(tmp_path, problem):
    _, path = _saved(tmp_path, problem, seed=11, training={"scheme": "layer-wise", "settings": {"lr": 0.1}})
    meta = load_checkpoint(path).metadata
    assert meta["format"] == "unfoldkit-checkpoint" and meta["format_version"] == FORMAT_VERSION
    assert meta["model"]["family"] == "tiny-lista" and meta["model"]["config"] == {"num_layers": 3, "dtype": "float32"}
    assert meta["problem"] == {"family": "sparse", "params": problem.params()}
    assert meta["training"]["scheme"] == "layer-wise" and meta["seed"] == 11
    assert set(meta["versions"]) >= {"unfoldkit", "torch"} and meta["versions"]["torch"] == torch.__version__
    assert meta["tensors"]["model/W"] == {"dtype": "float32", "shape": [3, 12, 24]}
    raw = torch.load(path, weights_only=True)
    assert sorted(raw) == ["format", "metadata", "model", "sha256", "state"] and "sha256" not in meta
    assert raw["metadata"] == canonical_json(meta)                     # the text the digest covers
    assert raw["sha256"] == checkpoint_digest(raw["metadata"], {"model": raw["model"], "state": raw["state"]})


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, problem, monkeypatch):
    model, path = _saved(tmp_path, problem)
    before = path.read_bytes()

    def broken_save(obj, fh, *a, **k):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _randomized(TinyLISTA(problem, 3), seed=5))
    assert path.read_bytes() == before                       # the old checkpoint is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_digest_depends_on_every_byte_name_and_shape():
    t = {"a": torch.arange(6, dtype=torch.float32)}
    base = tensor_digest({"model": t})
    assert tensor_digest({"model": {"a": t["a"].reshape(2, 3)}}) != base
    assert tensor_digest({"model": {"b": t["a"]}}) != base
    assert tensor_digest({"model": {"a": t["a"].double()}}) != base
    bumped = t["a"].clone()
    bumped[3] = torch.nextafter(bumped[3], torch.tensor(10.0))
    assert tensor_digest({"model": {"a": bumped}}) != base


def test_nested_state_round_trip():
    p = nn.Parameter(torch.randn(3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.sum().backward()
    opt.step()
    tensors = {}
    encoded = split_tensors(opt.state_dict(), "optimizer", tensors)
    json.dumps(encoded)
    decoded = join_tensors(json.loads(json.dumps(encoded)), tensors)
    assert decoded["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(decoded["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


# ---- bad checkpoints: each rejected with its own message -------------------------------------------------


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty file"):
        load_checkpoint(tmp_path / "empty.pt")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, problem, keep):
    _, path = _saved(tmp_path, problem)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_checkpoint(path)
    message = str(err.value)       # one whole sentence of torch's reason, then the fix (not cut mid-sentence)
    assert message.startswith(str(path)) and message.endswith("; re-create it") and "there is a high" not in message


def test_tampered_tensor_fails_the_hash(tmp_path, problem):
    _, path = _saved(tmp_path, problem)
    raw = torch.load(path, weights_only=True)
    raw["model"]["theta"][1] += 1.0
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="integrity check failed: the file was modified or corrupted; re-create it"):
        load_checkpoint(path)


def test_swapped_tensor_fails_the_hash(tmp_path, problem):
    _, path = _saved(tmp_path, problem)
    raw = torch.load(path, weights_only=True)
    raw["model"]["W"] = raw["model"]["W"].flip(0).contiguous()
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="modified or corrupted"):
        load_checkpoint(path)


class _Payload:
    """Unpickling this would call open(marker, "w"), creating the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_code_is_refused_without_running_it(tmp_path, problem):
    marker = tmp_path / "EXECUTED"
    _, good = _saved(tmp_path, problem)
    raw = torch.load(good, weights_only=True)
    raw["evil"] = _Payload(marker)                      # a real checkpoint with a code payload beside it
    torch.save(raw, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickled objects"):
        load_checkpoint(tmp_path / "evil.pt")
    with open(tmp_path / "evil.pkl", "wb") as fh:       # a bare (non-zip) pickle file
        pickle.dump({"format": "unfoldkit-checkpoint", "x": _Payload(marker)}, fh, protocol=2)
    with pytest.raises(CheckpointError, match="pickled objects"):
        load_checkpoint(tmp_path / "evil.pkl")
    with pytest.raises(CheckpointError, match="pickled objects"):
        load_model(tmp_path / "evil.pt", models=REGISTRY)
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(marker))).close()   # control: plain unpickling would have run it
    assert marker.exists()


def test_not_an_unfoldkit_checkpoint(tmp_path, problem):
    torch.save(TinyLISTA(problem, 3).state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="not an unfoldkit checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    (tmp_path / "text.pt").write_text("hello, world")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "text.pt")


def test_newer_format_and_corrupt_metadata(tmp_path, problem):
    _, path = _saved(tmp_path, problem)
    raw = torch.load(path, weights_only=True)
    meta = json.loads(raw["metadata"])
    meta["format_version"] = FORMAT_VERSION + 1
    torch.save({**raw, "metadata": json.dumps(meta)}, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="newer.*upgrade unfoldkit"):
        load_checkpoint(tmp_path / "newer.pt")
    torch.save({**raw, "metadata": "{not json"}, tmp_path / "badjson.pt")
    with pytest.raises(CheckpointError, match="integrity check failed"):
        load_checkpoint(tmp_path / "badjson.pt")
    _forge(tmp_path / "badjson.pt", {**raw, "metadata": "{not json"})
    with pytest.raises(CheckpointError, match="invalid JSON.*re-create it"):
        load_checkpoint(tmp_path / "badjson.pt")


def test_wrong_architecture(tmp_path, problem):
    _, path = _saved(tmp_path, problem)
    with pytest.raises(CheckpointError, match="wrong architecture.*'tiny-lista'.*'tiny-gd'"):
        restore_state(TinyGD(problem, 3), load_checkpoint(path))
    with pytest.raises(CheckpointError, match="wrong architecture"):
        load_model(path, family="tiny-gd", models=REGISTRY)
    with pytest.raises(CheckpointError, match="has 3 layers, the model 4"):
        restore_state(TinyLISTA(problem, 4), load_checkpoint(path))
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_model(path, models={"tiny-gd": TinyGD})


def test_wrong_shapes_and_names(tmp_path, problem):
    _, path = _saved(tmp_path, problem)
    other = SparseRecovery(m=12, n=30, sparsity=0.2, lam=0.05, seed=3)
    with pytest.raises(CheckpointError, match=r"wrong shape for tensor 'W': \(3, 12, 24\) in the checkpoint, \(3, 12, 30\)"):
        restore_state(TinyLISTA(other, 3), load_checkpoint(path))

    class Renamed(TinyLISTA):
        def __init__(self, problem, num_layers):
            super().__init__(problem, num_layers)
            self.extra = nn.Parameter(torch.zeros(2))

    with pytest.raises(CheckpointError, match=r"missing \['extra'\]"):
        restore_state(Renamed(problem, 3), load_checkpoint(path))
    with pytest.raises(CheckpointError, match="trained on a 'sparse' problem"):
        load_model(path, models=REGISTRY, problem=LeastSquares(m=30, n=24))


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_saving_needs_a_problem_and_json_config(tmp_path, problem):
    class NoConfig(TinyGD):
        def config(self):
            return {"f": object()}

    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "x.pt", NoConfig(problem, 2))
    assert not (tmp_path / "x.pt").exists()
    assert not os.listdir(tmp_path)


# ---- one integrity check over metadata and tensors; the metadata's schema ---------------------------------


def _forge(path, raw):
    """Write ``raw`` as a checkpoint whose integrity hash was recomputed (what a deliberate editor can do):
    only the schema checks stand between it and the caller."""
    raw = dict(raw)
    raw["sha256"] = checkpoint_digest(raw["metadata"], {"model": raw["model"], "state": raw["state"]})
    torch.save(raw, path)


def _edited(path, edit, forge=True):
    """Apply ``edit(meta, raw)`` to the checkpoint at ``path`` (metadata rewritten canonically), with the
    integrity hash recomputed (``forge``) or left as it was."""
    raw = torch.load(path, weights_only=True)
    meta = json.loads(raw["metadata"])
    edit(meta, raw)
    raw["metadata"] = canonical_json(meta)
    if forge:
        _forge(path, raw)
    else:
        torch.save(raw, path)
    return path


def _refused(path, *fragments):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_bit_flip_anywhere_in_the_stored_metadata_is_refused(tmp_path, problem):
    """Every byte of the metadata as it lies in the file, one bit flipped each (a damaged disk): refused."""
    _, path = _saved(tmp_path, problem, seed=0, training={"scheme": "end-to-end"})
    data = path.read_bytes()
    text = torch.load(path, weights_only=True)["metadata"].encode()
    start = data.find(text)
    assert start > 0 and len(text) > 500            # torch stores the pickled string verbatim
    rng = random.Random(0)
    for i in range(len(text)):
        flipped = bytearray(data)
        flipped[start + i] ^= 1 << rng.randrange(8)
        path.write_bytes(flipped)
        message = _refused(path)
        assert "re-create it" in message or "upgrade unfoldkit" in message, (i, message)


def test_edited_metadata_fails_the_integrity_check(tmp_path, problem):
    """200 single-bit edits of the metadata text, each saved back as a well-formed torch file: refused.
    (Before format 2 the hash covered the tensors only and most of these loaded silently.)"""
    _, path = _saved(tmp_path, problem, seed=0, training={"scheme": "end-to-end"})
    raw = torch.load(path, weights_only=True)
    text = raw["metadata"]
    rng = random.Random(1)
    for i in rng.sample(range(len(text)), 200):
        flipped = text[:i] + chr(ord(text[i]) ^ (1 << rng.randrange(7))) + text[i + 1:]
        torch.save({**raw, "metadata": flipped}, path)
        message = _refused(path)
        assert "integrity check failed" in message or "format version" in message, (i, message)


def test_problem_seed_edit_with_recomputed_tensor_hash_is_refused(tmp_path, problem):
    """The issue's case: the problem's seed 0 -> 1 (another matrix A: the model would measure nonsense),
    with the tensor hash recomputed as format 1 stored it."""
    base = SparseRecovery(m=12, n=24, sparsity=0.2, lam=0.05, seed=0)
    _, path = _saved(tmp_path, base)

    def edit(meta, raw):
        meta["problem"]["params"]["seed"] = 1
        meta["sha256"] = tensor_digest({"model": raw["model"], "state": raw["state"]})

    _edited(path, edit, forge=False)
    _refused(path, "integrity check failed: the file was modified or corrupted; re-create it")
    with pytest.raises(CheckpointError, match="integrity check failed"):
        load_model(path, models=REGISTRY)


@pytest.mark.parametrize("shape, fragment", [
    ("banana", "tensors['model/W'].shape must be a list of non-negative integers, got 'banana'"),
    ([64, 32], "tensors['model/W'] says float32 [64, 32], the tensor is float32 [3, 12, 24]"),
    ([3, 12, -24], "must be a list of non-negative integers"),
])
def test_tensor_shapes_in_metadata_must_be_the_tensors(tmp_path, problem, shape, fragment):
    _, path = _saved(tmp_path, problem)
    _edited(path, lambda meta, raw: meta["tensors"]["model/W"].update(shape=shape), forge=False)
    _refused(path, "integrity check failed")
    _, path = _saved(tmp_path, problem)
    _edited(path, lambda meta, raw: meta["tensors"]["model/W"].update(shape=shape))
    _refused(path, "invalid metadata", fragment, "re-create the checkpoint")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", ["theta", "W"])
def test_non_finite_parameters_are_refused_even_with_a_consistent_hash(tmp_path, problem, name, value):
    _, path = _saved(tmp_path, problem)
    raw = torch.load(path, weights_only=True)
    raw["model"][name].view(-1)[1] = value
    _forge(path, raw)
    _refused(path, f"tensor 'model/{name}' holds NaN or inf values", "re-create the checkpoint")


def test_saving_a_non_finite_model_writes_nothing(tmp_path, problem):
    model = _randomized(TinyLISTA(problem, 3))
    with torch.no_grad():
        model.theta[0] = math.nan
    with pytest.raises(ValueError, match="'model/theta' holds NaN or inf"):
        save_checkpoint(tmp_path / "nan.pt", model)
    assert not os.listdir(tmp_path)


def _set(path_in_meta, value):
    def edit(meta, raw):
        *parents, last = path_in_meta
        node = meta
        for key in parents:
            node = node[key]
        node[last] = value
    return edit


def _drop(key):
    return lambda meta, raw: meta.pop(key)


@pytest.mark.parametrize("edit, fragment", [
    (_set(("model", "dtype"), "float99"), "model.dtype is 'float99', not a torch dtype name"),
    (_set(("model", "dtype"), "int64"), "model.dtype must be a floating-point dtype"),
    (_set(("tensors", "model/theta", "dtype"), "float64"), "tensors['model/theta'] says float64 [3]"),
    (_set(("tensors", "model/theta", "dtype"), 7), "tensors['model/theta'].dtype is 7"),
    (_set(("model", "num_layers"), -3), "model.num_layers must be a positive integer"),
    (_set(("model", "num_layers"), "3"), "model.num_layers must be a positive integer"),
    (_set(("model", "family"), ""), "model.family must be a non-empty string"),
    (_set(("model", "config"), [1, 2]), "model.config must be a JSON object"),
    (_set(("model", "config", "num_layers"), math.inf), "model.config.num_layers is inf, not a finite number"),
    (_set(("problem", "params", "lam"), math.nan), "problem.params.lam is nan, not a finite number"),
    (_set(("problem", "params"), None), "problem.params must be a JSON object"),
    (_set(("seed",), -1), "seed must be a non-negative integer or null"),
    (_set(("seed",), 1.5), "seed must be a non-negative integer or null"),
    (_set(("seed",), True), "seed must be a non-negative integer or null"),
    (_set(("resume",), "epoch 3"), "resume must be a JSON object"),
    (_set(("training",), [1]), "training must be a JSON object"),
    (_set(("versions", "torch"), 2), "versions and created_utc must hold strings"),
    (_set(("format_version",), 1), "format 'unfoldkit-checkpoint' version 1 is not"),
    (_set(("extra",), 1), "the metadata has unexpected extra"),
    (_drop("problem"), "the metadata lacks problem"),
    (lambda meta, raw: meta["tensors"].pop("model/W"), "tensors does not list the file's tensors (unlisted ['model/W']"),
    (lambda meta, raw: meta["model"].pop("dtype"), "model lacks dtype"),
])
def test_metadata_breaking_the_schema_is_refused(tmp_path, problem, edit, fragment):
    _, path = _saved(tmp_path, problem, seed=2, training={"scheme": "end-to-end"})
    _edited(path, edit)
    _refused(path, "invalid metadata", fragment, "; re-create the checkpoint")


def test_a_format_1_file_is_refused_with_re_create_it(tmp_path, problem):
    """Format 1 (hash of the tensors inside the metadata, nothing at the top level): no longer read."""
    _, path = _saved(tmp_path, problem)
    raw = torch.load(path, weights_only=True)
    meta = json.loads(raw["metadata"])
    meta["format_version"] = 1
    meta["sha256"] = tensor_digest({"model": raw["model"], "state": raw["state"]})
    torch.save({k: v for k, v in raw.items() if k != "sha256"} | {"metadata": json.dumps(meta)}, path)
    _refused(path, "checkpoint format version 1 was written by an older unfoldkit", "re-create it")


def test_an_unexpected_entry_beside_the_checkpoint_is_refused(tmp_path, problem):
    _, path = _saved(tmp_path, problem)
    raw = torch.load(path, weights_only=True)
    torch.save({**raw, "note": "hello"}, path)
    _refused(path, "integrity check failed")


def test_bad_dtype_names_the_file_in_load_model(tmp_path, problem):
    """Item 8 of the issue: a bad dtype in the metadata did not name the file."""
    _, path = _saved(tmp_path, problem)
    _edited(path, _set(("model", "dtype"), "float99"))
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: invalid metadata: model.dtype is 'float99'"):
        load_model(path, models=REGISTRY)
