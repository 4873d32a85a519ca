"""A nonlinear autoencoder under online SGD against its order-parameter ODEs: one column per run.

Drawn from an experiment's ``combined.nc`` (:func:`daedyn.nonlinear_theory_analysis.combine`): dims
("run", "source", "noise_var", "lr", "seed", "t", "unit", "spike"). Top row: the denoising error
against training time t = steps/D, lines the theory, markers the mean over seeds with a band of ± one
standard deviation over seeds, one colour per noise variance σ², the first learning rate of each run.
Middle row: the same for the reconstruction error on clean inputs. Bottom row: the overlaps M_k0 of
every hidden unit with the top spike direction. In a data run's column the markers are the network
trained on the data made spiked (filled: the order parameters' Gaussian errors, x: the errors measured
on the data) and open circles its Gaussian twin.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from daedyn.figures import style

__all__ = ["plot_nonlinear_theory"]


def _marks(n: int, count: int = 20) -> slice:
    return slice(0, None, max(1, n // count))


@style.styled
def plot_nonlinear_theory(ds, title: str = ""):
    runs = [str(r) for r in ds["run"].values]
    fig, axes = plt.subplots(3, len(runs), figsize=(5.0 * len(runs), 10.5), squeeze=False, sharex="col")
    for col, run in enumerate(runs):
        one = ds.sel(run=run)
        one = one.dropna("lr", how="all", subset=["err_denoise"]).dropna("t", how="all", subset=["err_denoise"])
        lr = float(one["lr"].values[0])
        one = one.sel(lr=lr)
        t = one["t"].values
        marks = _marks(t.size)
        noise = one["noise_var"].values
        colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(noise)))
        data = "data" in one["source"].values and np.isfinite(one["err_denoise"].sel(source="data")).any()
        main = one.sel(source="data" if data else "gaussian")
        for row, name in enumerate(("err_denoise", "err_recon")):
            ax = axes[row, col]
            for i, nv in enumerate(noise):
                c = colors[i]
                ax.plot(t, main[f"theory_{name}"].sel(noise_var=nv), color=c, lw=1.6, label=f"σ² = {nv:g}")
                sim = main[name].sel(noise_var=nv)
                m, s = sim.mean("seed").values, sim.std("seed").values
                ax.fill_between(t, m - s, m + s, color=c, alpha=0.15, lw=0)
                ax.plot(t[marks], m[marks], "o", color=c, ms=3.5)
                if data:
                    measured = main[f"{name}_data"].sel(noise_var=nv).mean("seed").values
                    ax.plot(t[marks], measured[marks], "x", color=c, ms=5)
                    twin = one[name].sel(source="gaussian", noise_var=nv).mean("seed").values
                    ax.plot(t[marks], twin[marks], "o", mfc="none", color=c, ms=6)
            ax.set_ylabel(("denoising" if row == 0 else "reconstruction") + " error  ½E|x − x̂|² − bD/2")
            if row == 0:
                D, K = int(one["dim"]), int(one["hidden"])
                what = f"{one['activation'].values}, data made spiked" if data else f"{run}, spiked Gaussian"
                ax.set_title(f"{what}\nD = {D}, K = {K}, η = {lr:g}, {one.sizes['seed']} seeds", fontsize=10)
                ax.legend(fontsize=8, title="lines: theory; o: SGD mean ± sd" + ("\nx: measured on data, ○: twin"
                                                                                 if data else ""),
                          title_fontsize=8)
        ax = axes[2, col]
        for i, nv in enumerate(noise):
            c = colors[i]
            for k in one["unit"].values:
                ax.plot(t, main["theory_M"].sel(noise_var=nv, unit=k, spike=0), color=c, lw=1.2)
                m = main["M"].sel(noise_var=nv, unit=k, spike=0).mean("seed").values
                ax.plot(t[marks], m[marks], "o", color=c, ms=3)
        ax.set_ylabel("overlap $M_{k0} = w_k \\cdot v_0/\\sqrt{D}$ (every unit k)")
        ax.set_xlabel("training time t = SGD steps / D")
    fig.suptitle(f"Nonlinear autoencoder, online SGD against the order-parameter ODEs"
                 f"{' — ' + title if title else ''}", fontsize=12)
    fig.tight_layout()
    return fig
