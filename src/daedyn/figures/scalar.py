"""The paper's scalar-network Figures 1–4, drawn only from the ``figN_data`` datasets.

Each ``plot_figN(ds)`` returns a matplotlib Figure with the paper's panels. Fixes
relative to the notebooks (docs/science.md): Fig. 2 opacities stay in (0, 1] (D7); Fig. 3 shows both
WDAE learning rates and states what the matched "optimal" rates imply (D5); the Fig. 1
surfaces draw (E6) with the λ weighting (D9).
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D

from daedyn.figures import style

__all__ = ["plot_fig1", "plot_fig2", "plot_fig3", "plot_fig4", "fig3_caption", "opacity"]


def opacity(values, vmax=None, lo=0.2):
    """Map non-negative values to line opacities in [lo, 1]: never 0 (invisible) nor > 1."""
    v = np.asarray(values, float)
    vmax = float(np.nanmax(v)) if vmax is None else float(vmax)
    if vmax <= 0:
        return np.ones_like(v)
    return lo + (1.0 - lo) * np.clip(v / vmax, 0.0, 1.0)


def _fmt(x, digits=3):
    return f"{float(x):.{digits}g}"


# ------------------------------------------------------------------------- Fig. 1


@style.styled
def plot_fig1(ds):
    """Fig. 1 (2×3): top u(t), closed form (E11) solid green vs GD dashed orange, u* red
    dash-dot; bottom 3-D loss surfaces (E6) with GD paths, the saddle (red star) and the
    cyan hyperbola of global minima. Columns: the noise levels ε."""
    eps = ds["eps"].values
    n = eps.size
    fig = style.figure(figsize=(6.2 * n, 10.5))
    zmax = float(ds.attrs.get("surface_zmax", 50.0))
    t = ds["epoch"].values
    W1, W2 = np.meshgrid(ds["s_w1"].values, ds["s_w2"].values, indexing="ij")
    for i, e in enumerate(eps):
        d = ds.isel(eps=i)
        ustar = float(d["u_star"])
        ax = fig.add_subplot(2, n, i + 1)
        ax.plot(t, d["u_theory"].values.T, color=style.THEORY, lw=2.4)
        ax.plot(t, d["u_gd"].values.T, color=style.GD, ls="--", lw=1.4)
        ax.axhline(ustar, color=style.FIXED, ls="-.", lw=1.4)
        ax.set_title(f"ε = {_fmt(e)}:  u* = λ/(λ+ε) = {_fmt(ustar)}")
        ax.set_xlabel("epoch t")
        ax.set_ylabel("u = w₂·w₁")
        ax.set_xlim(t[0], t[-1])
        if i == 0:
            ax.legend(handles=[
                Line2D([], [], color=style.THEORY, lw=2.4, label="closed form, same init"),
                Line2D([], [], color=style.GD, ls="--", label="gradient descent"),
                Line2D([], [], color=style.FIXED, ls="-.", label="fixed point u*"),
            ], loc="lower right")

        ax3 = fig.add_subplot(2, n, n + i + 1, projection="3d", computed_zorder=False)
        Z = np.clip(d["surface_loss"].values, 0.0, zmax)
        vmin = max(float(d["min_loss"]), 1e-3)
        cmap = _cmap("jet")
        colors = cmap(LogNorm(vmin=vmin, vmax=zmax)(np.clip(Z, vmin, zmax)))
        ax3.plot_surface(W1, W2, Z, facecolors=colors, rstride=2, cstride=2, linewidth=0,
                         antialiased=False, alpha=0.55, shade=False, zorder=1)
        for k in range(d.sizes["trial"]):
            ax3.plot(d["w1"].values[k], d["w2"].values[k], np.clip(d["loss_gd"].values[k], 0, zmax),
                     color=style.GD, ls="--", lw=1.6, zorder=10)
        for b in range(d.sizes["branch"]):
            ax3.plot(d["min_w1"].values[b], d["min_w2"].values[b],
                     np.full(d.sizes["manifold_point"], float(d["min_loss"])),
                     color=style.MANIFOLD, lw=2.5, zorder=11)
        ax3.scatter([0.0], [0.0], [float(d["saddle_loss"])], marker="*", s=180,
                    color=style.FIXED, zorder=12, depthshade=False)
        ax3.view_init(elev=45, azim=10)
        ax3.set_xlabel("w₁")
        ax3.set_ylabel("w₂")
        ax3.set_zlabel("ℓ_λ")
        ax3.set_zlim(0, zmax)
        ax3.set_title(f"per-mode loss ℓ_λ, λ = {_fmt(ds.attrs['lam'])}, ε = {_fmt(e)} "
                      f"(z clipped at {_fmt(zmax)})")
        if i == 0:
            ax3.legend(handles=[
                Line2D([], [], color=style.GD, ls="--", label="GD path"),
                Line2D([], [], color=style.MANIFOLD, lw=2.5, label="global minima w₁w₂ = u*"),
                Line2D([], [], color=style.FIXED, marker="*", ls="", ms=12, label="saddle (0, 0)"),
            ], loc="upper left")
    fig.suptitle(f"Fig. 1 — {ds.attrs.get('title', '')}: λ = {_fmt(ds.attrs['lam'])}, γ = 0, "
                 f"η = {_fmt(ds.attrs['lr'])}, {ds.sizes['trial']} random inits in [−2, 2]²",
                 fontsize=14)
    fig.subplots_adjust(left=0.05, right=0.98, top=0.92, bottom=0.03, hspace=0.18, wspace=0.22)
    return fig


def _cmap(name):
    import matplotlib

    return matplotlib.colormaps[name]


# ------------------------------------------------------------------------- Fig. 2


@style.styled
def plot_fig2(ds):
    """Fig. 2 (2×3): closed-form u(t) (E7b); top DAE (green, opacity ∝ ε), bottom WDAE with
    matched γ = λε/(λ+ε) (orange, opacity ∝ γ); columns λ. Opacities lie in [0.2, 1] (D7)."""
    lams, eps = ds["lam"].values, ds["eps"].values
    n = lams.size
    fig = style.figure(figsize=(5.6 * n, 8.5))
    axes = fig.subplots(2, n, sharex=True, sharey=True, squeeze=False)
    t = ds["epoch"].values
    a_eps = opacity(eps)
    gam = ds["gamma"].values
    pick = sorted({0, eps.size // 2, eps.size - 1})
    for j, lam in enumerate(lams):
        top, bot = axes[0, j], axes[1, j]
        a_gam = opacity(gam[j])  # per panel: the largest γ of each λ is fully opaque
        for i, e in enumerate(eps):
            top.plot(t, ds["u_dae"].values[j, i], color=style.COLORS["DAE"], alpha=a_eps[i],
                     label=f"ε = {_fmt(e, 2)}" if i in pick else None)
            bot.plot(t, ds["u_wdae"].values[j, i], color=style.COLORS["WDAE"], alpha=a_gam[i],
                     label=f"γ = {_fmt(gam[j, i])} (ε = {_fmt(e, 2)})" if i in pick else None)
        top.set_title(f"DAE (noise), λ = {_fmt(lam)}")
        bot.set_title(f"WDAE (weight decay γ = λε/(λ+ε)), λ = {_fmt(lam)}")
        bot.set_xlabel("epoch t")
        bot.legend(loc="best", title="opacity ∝ γ")
        if j == 0:
            top.legend(loc="lower right", title="opacity ∝ ε")
    for ax in axes[:, 0]:
        ax.set_ylabel("u = w₂·w₁")
    axes[0, 0].set_ylim(0, 1.1)
    axes[0, 0].set_xlim(t[0], t[-1])
    fig.suptitle(f"Fig. 2 — {ds.attrs.get('title', '')}: balanced closed-form solution, "
                 f"η = {_fmt(ds.attrs['lr'])} (τ = {_fmt(ds.attrs['tau'], 8)}), "
                 f"u₀ = {_fmt(ds.attrs['u0'])}, ε = {_fmt(eps[0], 2)} … {_fmt(eps[-1], 2)} "
                 f"({eps.size} values), WDAE γ = λε/(λ+ε) (the DAE's plateau)",
                 fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


# ------------------------------------------------------------------------- Fig. 3


def fig3_caption(ds):
    """Caption of Fig. 3 with the differences measured from ``ds`` (D5)."""
    d = ds["u_diff"]
    opt = float(np.abs(d.sel(lr_rule="optimal")).max())
    nb = d.sel(lr_rule="notebook")
    peak = nb.max("epoch")
    i = int(np.argmax(peak.values))
    s = _fmt(ds.attrs["lr_scale"])
    return (
        f"Solid: WDAE at the notebook's rate {s}/(2λ+2γ); dashed: WDAE at the rate the middle "
        f"panel calls optimal, {s}/(2λ+γ). DAE at {s}/(2λ+3ε), γ = λε/(λ+ε). At the matched "
        f"\"optimal\" rates the curves coincide and u_DAE − u_WDAE is identically zero "
        f"(max |Δu| = {opt:.1e}), so the apparent speed advantage of noise comes from the "
        f"notebook's learning rate (max Δu = {float(peak[i]):.3f} at "
        f"ε = {_fmt(ds['eps'].values[i])})."
    )


@style.styled
def plot_fig3(ds):
    """Fig. 3 (1×3): left u(t) for DAE and WDAE, middle the "optimal" rates η* vs ε and their
    ratio, right u_DAE − u_WDAE; WDAE at the notebook's rate (solid) and at 1/(2λ+γ)·s
    (dashed). The caption (``fig3_caption``) is written under the panels."""
    fig = style.figure(figsize=(19, 6.4))
    ax_u, ax_eta, ax_d = fig.subplots(1, 3)
    t = ds["epoch"].values
    eps = ds["eps"].values
    alpha = opacity(eps)
    for i in range(eps.size):
        ax_u.plot(t, ds["u_dae"].values[i], color=style.COLORS["DAE"], alpha=alpha[i], lw=2.2)
        ax_u.plot(t, ds["u_wdae"].sel(lr_rule="notebook").values[i], color=style.COLORS["WDAE"],
                  alpha=alpha[i])
        ax_u.plot(t, ds["u_wdae"].sel(lr_rule="optimal").values[i], color=style.COLORS["WDAE"],
                  alpha=alpha[i], ls=(0, (4, 3)))
        ax_d.plot(t, ds["u_diff"].sel(lr_rule="notebook").values[i], color="k", alpha=alpha[i])
        ax_d.plot(t, ds["u_diff"].sel(lr_rule="optimal").values[i], color="tab:gray",
                  alpha=alpha[i], ls=(0, (4, 3)), lw=2)
    s = _fmt(ds.attrs["lr_scale"])
    ax_u.legend(handles=[
        Line2D([], [], color=style.COLORS["DAE"], lw=2.2, label=f"DAE, η = {s}/(2λ+3ε)"),
        Line2D([], [], color=style.COLORS["WDAE"], label=f"WDAE, η = {s}/(2λ+2γ) (notebook)"),
        Line2D([], [], color=style.COLORS["WDAE"], ls=(0, (4, 3)),
               label=f"WDAE, η = {s}/(2λ+γ) (\"optimal\")"),
    ], loc="upper right", title="opacity ∝ ε")
    ax_u.set(xlabel="epoch t", ylabel="u = w₂·w₁", xlim=(t[0], t[-1]), ylim=(0, 1.32),
             title=f"learning dynamics, λ = {_fmt(ds.attrs['lam'])}, "
                   f"ε ∈ [{_fmt(eps[0])}, {_fmt(eps[-1])}]")

    g = ds["eps_grid"].values
    ax_eta.plot(g, ds["eta_dae"], color=style.COLORS["DAE"], label="η*_DAE = 1/(2λ+3ε)")
    ax_eta.plot(g, ds["eta_wdae"], color=style.COLORS["WDAE"], label="η*_WDAE = 1/(2λ+γ)")
    ax_eta.plot(g, ds["eta_wdae_notebook"], color=style.COLORS["WDAE"], ls=":",
                label="notebook WDAE rate, run left and right: 1/(2λ+2γ)")
    ax_eta.plot(g, ds["eta_ratio"], color=style.RATIO, ls="--",
                label="ratio η*_DAE/η*_WDAE = λ/(λ+ε)")
    ax_eta.set(xlabel="noise variance ε (γ = λε/(λ+ε))", ylabel="learning rate / ratio",
               xlim=(g[0], g[-1]), ylim=(0, 1.05), title="\"optimal\" rates: 1/top Hessian eigenvalue at w₁ = w₂ = 1")
    ax_eta.legend(loc="upper right")

    ax_d.legend(handles=[
        Line2D([], [], color="k", label="WDAE at notebook rate"),
        Line2D([], [], color="tab:gray", ls=(0, (4, 3)), lw=2,
               label="WDAE at \"optimal\" rate (≡ 0)"),
    ], loc="upper right", title="opacity ∝ ε")
    ax_d.set(xlabel="epoch t", ylabel="u_DAE − u_WDAE", xlim=(t[0], t[-1]),
             title="difference DAE − WDAE")
    fig.suptitle(f"Fig. 3 — {ds.attrs.get('title', '')} (balanced closed-form solution, u₀ = "
                 f"{_fmt(ds.attrs['u0'])})", fontsize=13)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.text(0.5, 0.015, _wrap(fig3_caption(ds), 150), ha="center", va="bottom", fontsize=10,
             wrap=True)
    return fig


def _wrap(text, width):
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# ------------------------------------------------------------------------- Fig. 4


@style.styled
def plot_fig4(ds):
    """Fig. 4 (2×3): rows DAE (noise) and WDAE (weight decay). Left: loss (E6) with the
    negative-gradient field, GD paths (orange; small-init run magenta), minima (cyan) and
    the saddle (red star). Middle: u(t) with u* (red). Right: √(w1²+w2²) with √(2u*)."""
    fig = style.figure(figsize=(20, 11))
    axes = fig.subplots(2, 3, gridspec_kw={"width_ratios": [1.1, 1, 1]})
    t = ds["epoch"].values
    s1, s2 = ds["s_w1"].values, ds["s_w2"].values
    ext = [s1[0], s1[-1], s2[0], s2[-1]]
    q = int(ds.attrs.get("quiver_every", 5))
    small = ds["small_init_run"].values.astype(bool)
    S1, S2 = np.meshgrid(s1, s2, indexing="ij")
    for r, model in enumerate(ds["model"].values):
        d = ds.sel(model=model)
        e, gm, ustar = float(d["eps_model"]), float(d["gamma_model"]), float(d["u_star"])
        label = f"{model}: λ = {_fmt(ds.attrs['lam'])}, ε = {_fmt(e)}, γ = {_fmt(gm)}"
        ax_s, ax_u, ax_n = axes[r]

        im = ax_s.imshow(d["surface_loss"].values.T, origin="lower", extent=ext, cmap="coolwarm",
                         aspect="equal")
        fig.colorbar(im, ax=ax_s, label="Loss", fraction=0.046, pad=0.03)
        ax_s.quiver(S1[::q, ::q], S2[::q, ::q], d["neg_grad_w1"].values[::q, ::q],
                    d["neg_grad_w2"].values[::q, ::q], color="0.25", alpha=0.6)
        for k in range(d.sizes["trial"]):
            c = style.SMALL_INIT if small[k] else style.GD
            ax_s.plot(d["w1"].values[k], d["w2"].values[k], color=c, ls="--", lw=1.6)
            ax_s.plot(d["w1"].values[k, 0], d["w2"].values[k, 0], "o", color=c, ms=4)
        m1, m2 = d["min_w1"].values, d["min_w2"].values
        isolated = np.isfinite(m1).sum(axis=-1).max() == 1
        for b in range(m1.shape[0]):
            if isolated:
                ax_s.plot(m1[b], m2[b], "o", color=style.MANIFOLD, ms=10, mec="k")
            else:
                ax_s.plot(m1[b], m2[b], color=style.MANIFOLD, lw=2.5)
        ax_s.plot(0, 0, "*", color=style.FIXED, ms=16, mec="k")
        ax_s.set(xlim=ext[:2], ylim=ext[2:], xlabel="w₁", ylabel="w₂", title=label)
        ax_s.grid(False)

        for k in range(d.sizes["trial"]):
            c = style.SMALL_INIT if small[k] else style.GD
            ax_u.plot(t, d["u"].values[k], color=c, ls="--", lw=1.6 if small[k] else 1.3)
            ax_n.plot(t, d["norm"].values[k], color=style.SMALL_INIT if small[k] else style.NORM,
                      lw=1.6 if small[k] else 1.2)
        ax_n.plot(np.full(d.sizes["trial"], t[-1]), d["norm_pred"].values, "x", color="k", ms=7,
                  clip_on=False)
        ax_u.axhline(ustar, color=style.FIXED, ls="-.")
        nmin = float(d["norm_min"])
        ax_n.axhline(nmin, color="k", ls=":", lw=1.4)
        ax_u.set(xlabel="epoch t", ylabel="u = w₂·w₁", xlim=(t[0], t[-1]),
                 title=f"{model}: learning dynamics, u* = {_fmt(ustar)}")
        ax_n.set(xlabel="epoch t", ylabel="√(w₁² + w₂²)", xlim=(t[0], t[-1]),
                 title=f"{model}: weight norm")
        ax_u.legend(handles=[
            Line2D([], [], color=style.GD, ls="--", label="GD, random init"),
            Line2D([], [], color=style.SMALL_INIT, ls="--",
                   label=f"GD, w₁ = w₂ = {_fmt(ds.attrs['small_init'])}"),
            Line2D([], [], color=style.FIXED, ls="-.", label=f"u* = {_fmt(ustar)}"),
        ], loc="lower right")
        ax_n.legend(handles=[
            Line2D([], [], color=style.NORM, label="GD, random init"),
            Line2D([], [], color=style.SMALL_INIT, label="GD, small init"),
            Line2D([], [], color="k", ls=":", label=f"√(2u*) = {nmin:.3f} (minimum norm)"),
            Line2D([], [], color="k", marker="x", ls="", label="predicted final norm"),
        ], loc="lower right")
    axes[0, 0].legend(handles=[
        Line2D([], [], color=style.GD, ls="--", label="GD path"),
        Line2D([], [], color=style.SMALL_INIT, ls="--", label="GD path, small init"),
        Line2D([], [], color=style.MANIFOLD, lw=2.5, label="global minima"),
        Line2D([], [], color=style.FIXED, marker="*", ls="", ms=12, label="saddle"),
    ], loc="lower left", fontsize=8)
    fig.suptitle(f"Fig. 4 — {ds.attrs.get('title', '')}: η = {_fmt(ds.attrs['lr'])}, "
                 f"{ds.sizes['trial'] - 1} random inits in [−2, 2]² + one small init", fontsize=14)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig
