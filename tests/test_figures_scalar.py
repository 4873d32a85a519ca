"""Tests for daedyn.figures (style and the scalar Figures 1–4), with small datasets."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from daedyn import scalar
from daedyn.figures import scalar as fs
from daedyn.figures import style

SMALL = {
    "fig1": dict(eps=[0.0, 1.0, 5.0], epochs=20, trials=3, surface_points=15, manifold_points=40),
    "fig2": dict(lam=[2.5, 1.0, 0.5], eps=[0.0, 0.9, 1.8], epochs=2000, record_every=20),
    "fig3": dict(eps=[0.0, 1.0, 1.8], epochs=20000, record_every=200, eps_grid_step=0.5),
    "fig4": dict(epochs=60, trials=3, surface_points=20, manifold_points=40, long_epochs=80),
}
# axes: Fig. 4 has one colour bar per surface panel
N_AXES = {"fig1": 6, "fig2": 6, "fig3": 3, "fig4": 8}


@pytest.fixture(scope="module")
def datasets():
    return {k: getattr(scalar, f"{k}_data")(**v) for k, v in SMALL.items()}


@pytest.mark.parametrize("name", ["fig1", "fig2", "fig3", "fig4"])
def test_plot_returns_figure_and_saves_png(name, datasets, tmp_path):
    fig = getattr(fs, f"plot_{name}")(datasets[name])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == N_AXES[name]
    assert fig._suptitle is not None and fig._suptitle.get_text().startswith("Fig.")
    for ax in fig.axes[:3]:
        assert ax.get_title()  # every main panel has a title with its parameters
    written = style.save(fig, tmp_path / f"{name}.png")
    assert written == [tmp_path / f"{name}.png"]
    data = written[0].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_save_without_suffix_writes_png_and_pdf(datasets, tmp_path):
    fig = fs.plot_fig3(datasets["fig3"])
    written = style.save(fig, tmp_path / "sub" / "fig3")
    assert sorted(p.suffix for p in written) == [".pdf", ".png"]
    assert all(p.stat().st_size > 1000 for p in written)
    assert (tmp_path / "sub" / "fig3.pdf").read_bytes()[:4] == b"%PDF"


def test_fig2_opacities_are_visible_and_valid(datasets):
    fig = fs.plot_fig2(datasets["fig2"])
    alphas = [ln.get_alpha() for ax in fig.axes for ln in ax.get_lines()]
    assert alphas and all(0 < a <= 1 for a in alphas)  # D7: never 0, never > 1
    a = fs.opacity([0.0, 0.5, 1.047])
    assert a[0] > 0 and a[-1] == 1.0 and np.all(np.diff(a) > 0)


def test_fig1_lines_come_from_dataset(datasets):
    ds = datasets["fig1"]
    fig = fs.plot_fig1(ds)
    ax = fig.axes[0]
    ys = [ln.get_ydata() for ln in ax.get_lines()]
    # theory lines, GD lines and the fixed point for ε = 0
    assert any(np.allclose(y, ds["u_theory"].values[0, 0]) for y in ys)
    assert any(np.allclose(y, ds["u_gd"].values[0, 2]) for y in ys)
    assert any(np.allclose(y, ds["u_star"].values[0]) for y in ys)


def test_fig3_caption_states_zero_difference(datasets):
    ds = datasets["fig3"]
    cap = fs.fig3_caption(ds)
    assert "identically zero" in cap and "notebook" in cap
    peak = float(ds["u_diff"].sel(lr_rule="notebook").max())
    assert f"{peak:.3f}" in cap
    fig = fs.plot_fig3(ds)
    assert any("identically zero" in t.get_text().replace("\n", " ") for t in fig.texts)
    # both learning-rate variants are drawn in the difference panel
    styles = {ln.get_linestyle() for ln in fig.axes[2].get_lines()}
    assert len(styles) >= 2


def test_fig3_rate_labels_match_the_curves_drawn(datasets):
    """Each line of the middle panel is labelled with the formula it draws, computed here from ε."""
    ds = datasets["fig3"]
    lam, eps = ds.attrs["lam"], ds["eps_grid"].values
    gamma = lam * eps / (lam + eps)
    expected = {"1/(2λ+3ε)": 1 / (2 * lam + 3 * eps), "1/(2λ+γ)": 1 / (2 * lam + gamma),
                "1/(2λ+2γ)": 1 / (2 * lam + 2 * gamma), "λ/(λ+ε)": lam / (lam + eps)}
    lines = fs.plot_fig3(ds).axes[1].get_lines()
    drawn = {ln.get_label().rsplit(" ", 1)[-1].rsplit("=", 1)[-1]: ln for ln in lines}
    assert set(drawn) == set(expected), [ln.get_label() for ln in lines]
    for formula, values in expected.items():
        np.testing.assert_allclose(drawn[formula].get_ydata(), values, rtol=1e-12, err_msg=formula)
    assert drawn["1/(2λ+2γ)"].get_linestyle() == ":"  # the dotted line is the notebook's WDAE rate
