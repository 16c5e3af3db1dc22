"""How the figures read (issue 10, item 9), checked on tiny configurations: every panel has both axis labels,
legends are at least 7 pt and cover no curve, maths is mathtext (no plain-text "mu", "^" or "1e-16"), and
model families appear under their display names (ALISTA, LISTA-CPSS), never their registry names."""
import re

import matplotlib
import numpy as np
import pytest

from unfoldkit.experiments.figures import classical_rates, lista_theory, pep_learned_steps
from unfoldkit.unrolled.models import MODELS

matplotlib.use("Agg")

TINY = {
    classical_rates: classical_rates.Config(num_problems=2, per_problem=2, num_steps=30, lasso_m=10, lasso_n=20,
                                            lasso_lam=0.05, ls_m=8, ls_n=16, sc_m=12, sc_n=8, sc_kappa=10.0,
                                            huber_points=5),
    lista_theory: lista_theory.Config(m=30, n=45, num_layers=4, samples=64, amplitude=1.0, train_epochs=2,
                                      train_steps=3, test_size=64, max_s_reach=3, lam=0.05),
    pep_learned_steps: pep_learned_steps.Config(m=12, n=8, kappa=10.0, num_layers=3, train_epochs=3, train_steps=5,
                                                lr=0.05, test_size=64),
}


@pytest.fixture(scope="module", params=list(TINY), ids=lambda m: m.NAME)
def figure(request, tmp_path_factory):
    import matplotlib.pyplot as plt

    module = request.param
    extra = {"cache": tmp_path_factory.mktemp("cache")} if module is lista_theory else {}
    fig = module.plot(module.compute(TINY[module], seed=0, **extra))
    fig.canvas.draw()
    yield fig
    plt.close(fig)


def _texts(fig):
    """Every piece of text a reader sees: titles, axis labels, legend entries and titles, free text."""
    for ax in fig.axes:
        yield from (ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.texts))
        legend = ax.get_legend()
        if legend is not None:
            yield from (t.get_text() for t in (*legend.get_texts(), legend.get_title()))


def test_every_panel_has_both_axis_labels(figure):
    for ax in figure.axes:
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()


def test_legends_are_readable(figure):
    for ax in figure.axes:
        legend = ax.get_legend()
        assert legend is not None, ax.get_title()
        assert min(t.get_fontsize() for t in legend.get_texts()) >= 7, ax.get_title()


def test_legends_cover_no_curve(figure):
    """No drawn line of a panel (segments sampled in display space) passes under its legend's box."""
    for ax in figure.axes:
        box = ax.get_legend().get_window_extent()
        for line in ax.lines:
            xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
            xy = xy[np.all(np.isfinite(xy), axis=1)]
            t = np.linspace(0.0, 1.0, 50)[:, None, None]
            points = (xy[:-1] * (1 - t) + xy[1:] * t).reshape(-1, 2) if len(xy) > 1 else xy
            inside = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0)
                      & (points[:, 1] < box.y1))
            assert not inside.any(), f"{ax.get_title()!r}: legend covers {line.get_label()!r}"


def test_maths_is_mathtext(figure):
    for text in _texts(figure):
        plain = re.sub(r"\$[^$]*\$", "", text)  # what is left outside $...$
        assert not re.search(r"\bmu\b|\bkappa\b|\^|\b1e-\d", plain), text


def test_families_under_their_display_names(figure):
    for text in _texts(figure):
        for family in MODELS:
            assert not re.search(rf"(?<![\w-]){re.escape(family)}(?![\w-])", text), text
