"""Aggregation of a nonlinear-theory experiment (:mod:`daedyn.nonlinear_theory`): the theory beside every
run, the deviations of SGD from it in units of 1/√D, metrics rows and claims rows (xarray in, xarray out).

Deviation measures, per quantity (denoising and reconstruction error, overlaps M) and condition (σ², η),
each multiplied by √D:

* ``rms``: the root-mean-square over seeds of SGD − theory, worst over time (and over the K·P entries
  of M): the typical distance of one SGD run from the theory;
* ``mean``: |mean over seeds − theory|, worst over time: the theory's bias, plus the seeds' noise
  divided by √seeds;
* ``worst``: the largest |SGD − theory| of any seed, time and entry.

A claim per spiked-Gaussian run and learning rate judges the worst ``rms`` over σ², times and quantities
against the experiment's ``tolerance`` (confirmed at most the tolerance, qualified at most twice it,
refuted beyond); the data run's claim compares the data with its Gaussian twin.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import xarray as xr

from daedyn.claims import claim_row, fmt, grade
from daedyn.nonlinear_theory import ORDER, NonlinearTheoryConfig, Order, order_dataset, theory

__all__ = ["QUANTITIES", "add_theory", "claims_rows", "combine", "deviations", "metrics_rows"]

#: the quantities compared with the theory, and their names in words
QUANTITIES = {"err_denoise": "denoising error", "err_recon": "reconstruction error", "M": "overlaps M"}
#: the measured errors of a data run, against the theory's
MEASURED = {"err_denoise_data": "err_denoise", "err_recon_data": "err_recon"}


def run_config(params: Mapping, run: xr.Dataset) -> NonlinearTheoryConfig:
    """The run's configuration, with its spike variances as stored in the run file (a data run's come
    from its data)."""
    return NonlinearTheoryConfig.from_params(params).with_spikes(run["spike_var"].values)


def add_theory(run: xr.Dataset, params: Mapping, dt: float) -> xr.Dataset:
    """The run with the theory (variables ``theory_*``) from the order parameters of its shared initial
    weights (time 0 of any network), integrated with RK4 steps of at most ``dt``."""
    config = run_config(params, run)
    first = run.isel(noise_var=0, lr=0, seed=0, t=0)
    if "source" in first.dims:
        first = first.isel(source=0)
    op0 = Order(*(first[n].values for n in ORDER))
    times = run["t"].values
    th = order_dataset(config, times, theory(config, times, op0, dt=dt), prefix="theory_", seed_dim=False)
    return xr.merge([run, th.drop_vars("spike_var")], combine_attrs="drop_conflicts")


def deviations(ds: xr.Dataset, name: str, theory_name: str | None = None) -> dict[str, xr.DataArray]:
    """``rms``, ``mean`` and ``worst`` of SGD − theory for variable ``name`` against ``theory_<theory_name>``
    (default: ``theory_<name>``; module docstring), √D-scaled, per remaining dimension (noise_var, lr[, source])."""
    d = ds[name] - ds[f"theory_{theory_name or name}"]
    scale = math.sqrt(float(ds["dim"]))
    entries = [x for x in ("unit", "spike") if x in d.dims]
    rms = np.sqrt((d ** 2).mean("seed")).max(["t", *entries])
    mean = abs(d.mean("seed")).max(["t", *entries])
    worst = abs(d).max(["seed", "t", *entries])
    return {"rms": rms * scale, "mean": mean * scale, "worst": worst * scale}


def combine(runs: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """Runs with their theory along ``run`` (outer join: a data run's own learning rates, dimension and
    ``source`` leave NaN elsewhere); per-run facts become coordinates along ``run``."""
    parts, facts = [], []
    for name, ds in runs.items():
        if "source" not in ds.dims:
            ds = ds.expand_dims(source=["gaussian"])
        scalars = {k: ds[k] for k in ds.coords if ds[k].ndim == 0}
        ds = ds.drop_vars(list(scalars))
        ds = ds.assign(spike_variance=ds["spike_var"].reset_coords(drop=True)).drop_vars("spike_var")
        parts.append(ds.expand_dims(run=[name]))
        facts.append(scalars)
    out = xr.concat(parts, "run", join="outer", combine_attrs="drop_conflicts", data_vars="all")
    for key in dict.fromkeys(k for f in facts for k in f):
        first = next(f[key] for f in facts if key in f)
        text = first.dtype.kind in "US"
        values = [f[key].values.item() if key in f else ("" if text else np.nan) for f in facts]
        out = out.assign_coords({key: ("run", np.asarray(values), dict(first.attrs))})
    for k, long in (("spike_variance", "spike variance: lambda_r above the bulk (a data run: from its data)"),):
        out[k].attrs.update(long_name=long, units="1")
    # the outer join over runs of other learning rates and times drops these coordinates' attributes
    out["lr"].attrs.update(long_name="learning rate: eta (decoder: eta/D)", units="1")
    out["t"].attrs.update(long_name="training time: t = SGD steps / D", units="1")
    for var in out.variables.values():  # the run files' `coordinates` may name the dropped spike_var
        var.encoding.pop("coordinates", None)
    out["run"].attrs.update(long_name="run: an activation on spiked Gaussian inputs, or data", units="1")
    out["source"].attrs.update(long_name="inputs: gaussian (spiked Gaussian) or data (real data made spiked)")
    return out


def metrics_rows(combined: xr.Dataset) -> list[dict]:
    """One row per run, source, condition and quantity: the three deviations and the error at the end."""
    rows = []
    for run in combined["run"].values:
        one = combined.sel(run=run)
        for source in one["source"].values:
            part = one.sel(source=source)
            if not np.isfinite(part["err_denoise"]).any():
                continue
            part = part.dropna("lr", how="all", subset=["err_denoise"]).dropna("t", how="all",
                                                                                subset=["err_denoise"])
            dims = float(part["dim"])
            names = [(q, None) for q in QUANTITIES] + [(m, t) for m, t in MEASURED.items()
                                                         if m in part and np.isfinite(part[m]).any()]
            for name, theory_name in names:
                dev = deviations(part.assign_coords(dim=dims), name, theory_name)
                th = part[f"theory_{theory_name or name}"]
                for nv in part["noise_var"].values:
                    for lr in part["lr"].values:
                        at = dict(noise_var=nv, lr=lr)
                        final = None if name == "M" else float(part[name].sel(at).isel(t=-1).mean("seed"))
                        rows.append({
                            "run": str(run), "source": str(source), "activation": str(part["activation"].values),
                            "dim": int(dims), "noise_var": float(nv), "lr": float(lr), "quantity": name,
                            "rms_dev_sqrtD": round(float(dev["rms"].sel(at)), 4),
                            "mean_dev_sqrtD": round(float(dev["mean"].sel(at)), 4),
                            "worst_dev_sqrtD": round(float(dev["worst"].sel(at)), 4),
                            "final_sgd": "" if final is None else round(final, 5),
                            "final_theory": "" if name == "M" else round(float(th.sel(at).isel(t=-1)), 5),
                            "seeds": int(part.sizes["seed"]), "time": float(part["t"].values[-1]),
                        })
    return rows


def _worst(rows, *, run, source, quantities, field="rms_dev_sqrtD"):
    picked = [r for r in rows if r["run"] == run and r["source"] == source and r["quantity"] in quantities]
    return {q: max(r[field] for r in picked if r["quantity"] == q) for q in quantities
            if any(r["quantity"] == q for r in picked)}


def claims_rows(combined: xr.Dataset, experiment: str, tolerance: float) -> list[dict]:
    """The experiment's claims: theory against SGD for every spiked-Gaussian run, and Gaussian equivalence
    for a data run (module docstring for the deviation measures and the grading)."""
    rows = metrics_rows(combined)
    out = []
    for run in combined["run"].values:
        run = str(run)
        one = combined.sel(run=run)
        D, K = int(one["dim"]), int(one["hidden"])
        seeds = int(np.isfinite(one["err_denoise"]).any(["noise_var", "lr", "t", "source"]).sum())
        noise = ", ".join(fmt(v) for v in one["noise_var"].values)
        lrs = sorted({r["lr"] for r in rows if r["run"] == run})
        if run != "data":
            for lr in lrs:
                at = [r for r in rows if r["run"] == run and r["lr"] == lr]
                rms, mean, worst = ({q: max(r[field] for r in at if r["quantity"] == q) for q in QUANTITIES}
                                    for field in ("rms_dev_sqrtD", "mean_dev_sqrtD", "worst_dev_sqrtD"))
                top_q = max(rms, key=rms.get)
                top = rms[top_q]
                th = one["theory_err_denoise"].sel(source="gaussian", lr=lr).isel(noise_var=-1)
                out.append(claim_row(
                    f"{experiment}/theory_vs_sgd_{run}_lr{fmt(lr)}",
                    f"The order-parameter ODEs predict online SGD of the {run} network at eta = {fmt(lr)} (D = {D}, "
                    f"K = {K}, {seeds} seeds, sigma^2 in {{{noise}}}, t up to {fmt(one['t'].max())}): the "
                    f"root-mean-square over seeds of SGD - theory, worst over sigma^2 and time, of the denoising and "
                    f"reconstruction errors and the spike overlaps M",
                    "RMS x sqrt(D): " + ", ".join(f"{QUANTITIES[q]} {fmt(v)}" for q, v in rms.items())
                    + "; |mean over seeds - theory| x sqrt(D): " + ", ".join(f"{fmt(v)}" for v in mean.values())
                    + "; worst single seed x sqrt(D): " + ", ".join(f"{fmt(v)}" for v in worst.values()),
                    f"at most {fmt(tolerance)}/sqrt(D) = {fmt(tolerance / math.sqrt(D))}",
                    grade(top <= tolerance, top <= 2 * tolerance),
                    f"deviations in units of 1/sqrt(D), seeds from shared initial weights; at sigma^2 = "
                    f"{fmt(one['noise_var'].values[-1])} the theory's denoising error goes from {fmt(th.values[0])} to "
                    f"{fmt(th.dropna('t').values[-1])}",
                    tolerance=f"{fmt(tolerance)} x 1/sqrt(D); qualified up to {fmt(2 * tolerance)} x 1/sqrt(D)",
                    judged_on=f"the RMS over seeds, worst over sigma^2, time and quantity: {fmt(top)} x 1/sqrt(D) "
                              f"({QUANTITIES[top_q]}); the worst single seed, reported, not judged: "
                              f"{fmt(max(worst.values()))} x 1/sqrt(D)"))
            continue
        data = _worst(rows, run=run, source="data", quantities=list(QUANTITIES))
        twin = _worst(rows, run=run, source="gaussian", quantities=list(QUANTITIES))
        measured = _worst(rows, run=run, source="data", quantities=list(MEASURED), field="mean_dev_sqrtD")
        twin_mean = _worst(rows, run=run, source="gaussian", quantities=list(MEASURED.values()),
                           field="mean_dev_sqrtD")
        # what finite D alone gives (the twin), or the tolerance where the twin is closer still
        bound_dyn = max(tolerance, *twin.values())
        bound_err = max(tolerance, *twin_mean.values())
        ratio = max(max(data.values()) / bound_dyn, max(measured.values()) / bound_err)
        drop = float((one["theory_err_denoise"].isel(t=0) - one["theory_err_denoise"].isel(t=-1)).min())
        gap = max(measured.values()) / math.sqrt(D)
        ends = [r["final_sgd"] - r["final_theory"] for r in rows
                if r["run"] == run and r["source"] == "data" and r["quantity"] == "err_denoise_data"]
        end = max(ends, key=abs)
        dataset = str(one["dataset"].values) if "dataset" in one.coords else "the data"
        out.append(claim_row(
            f"{experiment}/gaussian_equivalence",
            f"Gaussian equivalence: the same network ({one['activation'].values}, D = {D}, K = {K}, {seeds} seeds, "
            f"sigma^2 in {{{noise}}}) trained on {dataset} made spiked (centred, top {D} principal directions, the "
            f"top {one.sizes['spike']} kept, the rest whitened to the bulk variance, so only moments beyond the "
            f"second differ from the theory's Gaussian) follows the Gaussian theory as closely as its Gaussian twin "
            f"(the same spikes, seeds and initial weights) does",
            "RMS over seeds of SGD - theory x sqrt(D), data: " + ", ".join(f"{QUANTITIES[q]} {fmt(v)}"
                                                                         for q, v in data.items())
            + "; Gaussian twin: " + ", ".join(f"{QUANTITIES[q]} {fmt(v)}" for q, v in twin.items())
            + "; errors measured on the data, |mean over seeds - theory| x sqrt(D): "
            + ", ".join(f"{QUANTITIES[k.removesuffix('_data')]} {fmt(v)}" for k, v in measured.items())
            + f" (twin: {fmt(max(twin_mean.values()))}), i.e. {fmt(gap)} against a fall of the theory's denoising "
            f"error of {fmt(drop)} or more ({fmt(100 * gap / drop, 2)} %); at the end the measured denoising error "
            f"is {'below' if end < 0 else 'above'} the theory's by up to {fmt(abs(end))}",
            f"each within max(tolerance {fmt(tolerance)}, the twin's) x 1/sqrt(D): {fmt(bound_dyn)} for SGD - theory, "
            f"{fmt(bound_err)} for the measured errors",
            grade(ratio <= 1, ratio <= 2),
            f"worst ratio to the bound {fmt(ratio)}; either answer is a finding: within the bound the data's "
            "higher moments do not show at this D, beyond it they do",
            tolerance="a ratio to the bound of at most 1; qualified up to 2",
            judged_on=f"the largest ratio to its bound over the data's three RMS deviations and its two measured "
                      f"errors: {fmt(ratio)}"))
    return out
