"""`unfoldkit reproduce all` and its index page, on a registry of tiny fake figures (no real figure runs
here except in the slow test): the index (MD, self-contained HTML, JSON), resume and --force, a failing or
violating entry, --only, argument errors, and that `reproduce NAME` and `list` work as before."""
from __future__ import annotations

import json
import struct
import sys
import types
import zlib
from pathlib import Path

import pytest

from unfoldkit.experiments import figures as registry
from unfoldkit.experiments.cli import main
from unfoldkit.experiments.figures import ALL, FIGURES, Figure


def _png() -> bytes:
    """A valid 1x1 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def _fake_module(name: str, behaviour: str, calls: list) -> types.ModuleType:
    """A figure module whose reproduce writes NAME.{png,pdf,json} and holds, violates a verdict, raises, or is
    interrupted (``behaviour``: "holds", "violated", "raises", "interrupt"); each call is appended to ``calls``."""
    from unfoldkit.unrolled.io import write_json

    module = types.ModuleType(f"fake_figure_{name.replace('-', '_')}")
    module.NAME, module.DESCRIPTION = name, f"fake figure {name} ({behaviour})"

    def reproduce(out_dir, quick=False, seed=0, progress=True):
        calls.append((name, quick, seed))
        if behaviour == "raises":
            raise RuntimeError(f"{name} broke on purpose")
        if behaviour == "interrupt":
            raise KeyboardInterrupt
        out = Path(out_dir)
        holds = behaviour == "holds"
        verdicts = {f"{name} bound": {"name": f"{name} bound", "state": "holds" if holds else "VIOLATED",
                                      "holds": holds, "tightness": 1.25 if holds else 0.5},
                    f"{name} other bound": {"state": "not applicable", "holds": False, "tightness": None}}
        (out / f"{name}.png").write_bytes(_png())
        (out / f"{name}.pdf").write_bytes(b"%PDF-1.4 fake")
        result = {"figure": name, "seed": seed, "verdicts": verdicts, "all_hold": holds}
        write_json(out / f"{name}.json", {**result, "mode": "quick" if quick else "full"})
        return {**result, "paths": [str(out / f"{name}.{x}") for x in ("png", "pdf", "json")]}

    module.reproduce = reproduce
    return module


@pytest.fixture
def fake(monkeypatch):
    """Install fake figures: ``fake("good", "holds"), fake("bad", "violated")``; returns the calls list."""
    calls: list = []
    figures: dict[str, Figure] = {}
    monkeypatch.setattr(registry, "FIGURES", figures)

    def install(*specs: tuple[str, str]) -> list:
        for name, behaviour in specs:
            module = _fake_module(name, behaviour, calls)
            monkeypatch.setitem(sys.modules, module.__name__, module)
            figures[name] = Figure(name, module.DESCRIPTION, module.__name__, paper=f"Paper of {name}, Fig. 0",
                                   caption=f"Caption paragraph of {name}.")
        return calls
    return install


def _index(out: Path) -> dict:
    return json.loads((out / "index.json").read_text())


def test_all_writes_a_self_contained_index_and_exits_1_on_a_violated_verdict(fake, tmp_path, capsys):
    calls = fake(("good", "holds"), ("bad", "violated"))
    out = tmp_path / "all"
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress"]) == 1
    assert calls == [("good", True, 0), ("bad", True, 0)]  # quick by default, registry order
    printed = capsys.readouterr().out
    assert "a verdict does not hold in bad" in printed and "wrote" in printed
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "src=\"http" not in page and "<link" not in page and "<script" not in page  # nothing external
    for text in ("Paper of good, Fig. 0", "Caption paragraph of bad.", "href=\"good.pdf\"", "href=\"bad.json\"",
                 "VIOLATED", "not applicable", "1.25", "quick", "unfoldkit"):
        assert text in page
    md = (out / "index.md").read_text()
    assert "![good](good.png)" in md and "[bad.pdf](bad.pdf)" in md and "Caption paragraph of good." in md
    doc = _index(out)
    assert [e["status"] for e in doc["entries"]] == ["ran", "ran"]
    assert doc["summary"]["all_hold"] is False and doc["summary"]["violated_entries"] == ["bad"]
    assert doc["mode"] == "quick" and doc["seed"] == 0 and doc["version"]
    assert all(e["seconds"] >= 0 for e in doc["entries"])


def test_resume_skips_finished_entries_and_force_reruns_them(fake, tmp_path, capsys):
    calls = fake(("good", "holds"), ("also-good", "holds"))
    out = tmp_path / "all"
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress", "--seed", "3"]) == 0
    first = _index(out)
    assert len(calls) == 2 and first["summary"]["all_hold"] is True
    capsys.readouterr()
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress", "--seed", "3"]) == 0
    assert len(calls) == 2  # nothing recomputed
    assert capsys.readouterr().out.count("skipped") == 2
    doc = _index(out)
    assert [e["status"] for e in doc["entries"]] == ["skipped", "skipped"]
    assert [e["seconds"] for e in doc["entries"]] == [e["seconds"] for e in first["entries"]]  # earlier times kept
    assert "earlier run" in (out / "index.html").read_text()
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress", "--seed", "3", "--force"]) == 0
    assert calls[2:] == [("good", True, 3), ("also-good", True, 3)]
    # an interrupted earlier run (PNG without JSON) is completed, not refused
    (out / "good.json").unlink()
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress", "--seed", "3"]) == 0
    assert calls[4:] == [("good", True, 3)]


def test_outputs_of_another_mode_or_seed_need_force(fake, tmp_path, capsys):
    calls = fake(("good", "holds"))
    out = tmp_path / "all"
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress", "--full"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "good (quick mode, seed 0)" in err and "--force" in err
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress", "--seed", "1"]) == 2
    assert len(calls) == 1
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress", "--full", "--force"]) == 0
    assert calls[-1] == ("good", False, 0) and _index(out)["mode"] == "full"


def test_a_failing_entry_is_recorded_and_the_others_still_run(fake, tmp_path, capsys):
    calls = fake(("broken", "raises"), ("good", "holds"))
    out = tmp_path / "all"
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress"]) == 1
    assert [c[0] for c in calls] == ["broken", "good"]
    captured = capsys.readouterr()
    assert "broken: FAILED: RuntimeError: broken broke on purpose" in captured.out
    assert "Traceback" in captured.err
    doc = _index(out)
    assert doc["entries"][0]["status"] == "FAILED" and "broke on purpose" in doc["entries"][0]["error"]
    assert doc["entries"][1]["status"] == "ran" and doc["summary"]["failed"] == 1
    assert doc["summary"]["violated_entries"] == [] and not doc["summary"]["all_hold"]
    page = (out / "index.html").read_text()
    assert "FAILED: RuntimeError: broken broke on purpose" in page and page.count("data:image/png;base64,") == 1
    # the next run retries the failed entry and keeps the good one
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress"]) == 1
    assert [c[0] for c in calls] == ["broken", "good", "broken"]


def test_an_interrupt_writes_the_index_and_says_how_to_continue(fake, tmp_path, capsys):
    fake(("good", "holds"), ("stop", "interrupt"), ("later", "holds"))
    out = tmp_path / "all"
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress"]) == 130
    assert "run the same command again" in capsys.readouterr().err
    assert [e["status"] for e in _index(out)["entries"]] == ["ran", "not run", "not run"]
    assert "interrupted" in (out / "index.md").read_text()


def test_only_selects_entries_and_an_unknown_name_is_a_one_line_error(fake, tmp_path, capsys):
    calls = fake(("one", "holds"), ("two", "holds"), ("three", "violated"))
    out = tmp_path / "all"
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress", "--only", "three,one"]) == 1
    assert [c[0] for c in calls] == ["one", "three"]  # registry order
    assert [e["name"] for e in _index(out)["entries"]] == ["one", "three"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["reproduce", ALL, "--out", str(out), "--only", "one,nope"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'nope'" in err
    assert main(["reproduce", "one", "--out", str(tmp_path / "x"), "--only", "one"]) == 2
    assert "--only" in capsys.readouterr().err


def test_reproduce_name_is_unchanged(fake, tmp_path, capsys):
    calls = fake(("good", "holds"), ("bad", "violated"))
    out = tmp_path / "one"
    assert main(["reproduce", "good", "--out", str(out), "--no-progress"]) == 0
    assert calls == [("good", False, 0)]  # one figure: paper scale by default
    printed = capsys.readouterr().out
    assert "good bound" in printed and "holds" in printed and "tightness 1.25" in printed
    assert "tightness n/a" in printed and "good: all bounds hold" in printed
    assert not (out / "index.html").exists()
    assert main(["reproduce", "good", "--out", str(out)]) == 2  # existing outputs: only with --force
    assert "--force" in capsys.readouterr().err
    assert main(["reproduce", "bad", "--out", str(out), "--quick", "--no-progress"]) == 1
    assert calls[-1] == ("bad", True, 0)
    with pytest.raises(SystemExit) as stop:
        main(["reproduce", "nope"])
    assert stop.value.code == 2


def test_list_shows_the_paper_of_each_entry(fake, capsys):
    fake(("good", "holds"))
    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    assert "fake figure good (holds)" in printed and "paper: Paper of good, Fig. 0" in printed
    assert f"reproduce {ALL}" in printed


def test_the_registry_states_paper_and_caption_and_reserves_all():
    assert ALL not in FIGURES
    for figure in FIGURES.values():  # what `list` and the index page show
        assert figure.paper and len(figure.caption) > len(figure.DESCRIPTION), figure.NAME
    with pytest.raises(ValueError, match="cannot be named 'all'"):
        Figure(ALL, "x", "nowhere")


@pytest.mark.slow
def test_all_quick_runs_a_real_figure(tmp_path):
    out = tmp_path / "real"
    assert main(["reproduce", ALL, "--out", str(out), "--no-progress", "--only", "pep-learned-steps"]) == 0
    doc = _index(out)
    assert doc["entries"][0]["status"] == "ran" and doc["entries"][0]["verdicts"]
    assert "data:image/png;base64," in (out / "index.html").read_text()
