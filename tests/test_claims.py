"""Tests for daedyn.paper_claims on the paper's Fig. 1–4 datasets (and deliberately broken ones), and
for the claims tables of daedyn.claims."""

import csv

import pytest

from daedyn import claims, paper_claims, scalar, theory

REQUIRED = {"1", "2", "3", "5", "6", "7", "8", "9 (theory)", "10", "11", "12", "13 (scalar)",
            "17", "19"}


@pytest.fixture(scope="module")
def figs():
    return {k: getattr(scalar, f"{k}_data")(**scalar.FIGURE_DEFAULTS[k])
            for k in ("fig1", "fig2", "fig3", "fig4")}


@pytest.fixture(scope="module")
def rows(figs):
    return paper_claims.theory_claims(**figs)


def _by_id(rows):
    return {r["claim"]: r for r in rows}


def test_rows_have_columns_and_valid_verdicts(rows):
    assert rows
    for r in rows:
        assert tuple(r) == claims.COLUMNS
        assert r["verdict"] in claims.VERDICTS
        assert r["statement"] and r["measured"] and r["expected"]
    assert REQUIRED <= set(_by_id(rows))
    assert len({r["claim"] for r in rows}) == len(rows)


def test_default_verdicts(rows):
    """With the paper's parameters the exact identities hold; the Fig. 3 reading does not."""
    v = {k: r["verdict"] for k, r in _by_id(rows).items()}
    for k in ("1", "5", "6", "7", "8", "9 (theory)", "10", "11", "12", "13 (scalar)", "17", "19"):
        assert v[k] == "confirmed", (k, _by_id(rows)[k])
    assert v["11 (paper's Fig. 3)"] == "refuted"
    assert v["2"] != "refuted" and v["3"] != "refuted"


def test_measured_numbers_are_computed(rows, figs):
    r6 = _by_id(rows)["6"]["measured"]
    t = float(figs["fig2"]["t_half_dae"].sel(lam=1.0, eps=1.0))
    assert f"{t:.1f}" in r6
    r11 = _by_id(rows)["11"]["measured"]
    peak = float(figs["fig3"]["u_diff"].sel(lr_rule="notebook", eps=1.0).max())
    assert f"{peak:.4f}" in r11


def test_timings_are_whole_steps_counted_by_brute_force(rows, figs):
    """Claim 12's plateau and claim 6's curve check are first whole steps, counted here from a
    scalar GD (Fig. 4's small start) and from the closed form at every epoch (Fig. 2)."""
    import numpy as np

    f4 = figs["fig4"]
    counts = []
    for m in f4["model"].values:
        lam, lr = f4.attrs["lam"], f4.attrs["lr"]
        eps, gamma = float(f4["eps_model"].sel(model=m)), float(f4["gamma_model"].sel(model=m))
        w1 = w2 = scalar.FIGURE_DEFAULTS["fig4"]["small_init"]
        step, level = 0, 0.1 * max(lam - gamma, 0.0) / (lam + eps)  # a tenth of u*
        while w1 * w2 < level:
            r = lam - (lam + eps) * w1 * w2
            w1, w2 = w1 + lr * (w2 * r - gamma * w1), w2 + lr * (w1 * r - gamma * w2)
            step += 1
        counts.append(step)
    assert f"reaches u*/10 at epoch {counts[0]}, {counts[1]}" in _by_id(rows)["12"]["measured"]
    f2 = figs["fig2"]
    lam, eps, lr, u0 = 1.0, 1.0, f2.attrs["lr"], f2.attrs["u0"]
    t_half = float(f2["t_half_dae"].sel(lam=lam, eps=eps))
    k = int(np.floor(t_half))  # the closed form at whole epochs around its continuous half-time
    u = [float(theory.balanced_u(t, lam, eps, 0.0, lr, u0)) for t in (k, k + 1)]
    half = 0.5 * lam / (lam + eps)
    first = k if u[0] >= half else k + 1
    assert u[1] >= half and f"first step at or above half {first}/" in _by_id(rows)["6"]["measured"]


def test_perturbed_fig2_plateau_is_refuted(figs):
    bad = figs["fig2"].copy(deep=True)
    bad["u_star_wdae"][1, 3] += 0.01
    r = _by_id(paper_claims.theory_claims(figs["fig1"], bad, figs["fig3"], figs["fig4"]))
    assert r["5"]["verdict"] == "refuted"
    # a uniformly rescaled (still flat) WDAE curve is caught through the curve ends as well
    bad2 = figs["fig2"].copy(deep=True)
    bad2["u_wdae"][:] = bad2["u_wdae"] * 1.02
    r2 = _by_id(paper_claims.theory_claims(figs["fig1"], bad2, figs["fig3"], figs["fig4"]))
    assert r2["5"]["verdict"] == "refuted" and r2["6"]["verdict"] != "confirmed"


def test_broken_fig3_and_fig4_change_verdicts(figs):
    bad3 = figs["fig3"].copy(deep=True)
    bad3["u_diff"].loc[dict(lr_rule="optimal")] = bad3["u_diff"].sel(lr_rule="notebook").values
    r = _by_id(paper_claims.theory_claims(figs["fig1"], figs["fig2"], bad3, figs["fig4"]))
    assert r["11"]["verdict"] != "confirmed"
    assert r["11 (paper's Fig. 3)"]["verdict"] != "refuted"
    bad4 = figs["fig4"].copy(deep=True)
    bad4["norm_long"].loc[dict(model="WDAE")] = bad4["norm_long"].sel(model="WDAE").values * 1.01
    r4 = _by_id(paper_claims.theory_claims(figs["fig1"], figs["fig2"], figs["fig3"], bad4))
    assert r4["12"]["verdict"] == "refuted"


def test_csv_and_format(rows, tmp_path):
    p = claims.write_claims_csv(rows, tmp_path / "out" / "claims.csv")
    with open(p, newline="", encoding="utf-8") as fh:
        back = list(csv.DictReader(fh))
    assert [r["claim"] for r in back] == [r["claim"] for r in rows]
    assert back[0].keys() == set(claims.COLUMNS)
    assert back[4]["measured"] == rows[4]["measured"]
    text = claims.format_claims(rows)
    for r in rows:
        assert f"claim {r['claim']}:" in text
    n = {v: sum(r["verdict"] == v for r in rows) for v in claims.VERDICTS}
    assert f"{n['confirmed']} confirmed" in text


def test_beyond_claims_table_concatenates_and_checks_experiment_files(tmp_path):
    from daedyn import claims, store
    from daedyn.jobs.claims import beyond_claims_job

    row = {"claim": "depth-1", "statement": "s", "measured": "1", "expected": "1", "verdict": "confirmed",
           "note": ""}
    claims.write_claims_csv([row], tmp_path / "a.csv")
    claims.write_claims_csv([{**row, "claim": "mask-1", "verdict": "refuted"}], tmp_path / "b.csv")
    beyond_claims_job([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], str(tmp_path / "beyond.csv"))
    lines = (tmp_path / "beyond.csv").read_text().splitlines()
    assert lines[0] == ",".join(claims.COLUMNS) and [ln.split(",")[0] for ln in lines[1:]] == ["depth-1", "mask-1"]
    claims.write_claims_csv([{**row, "verdict": "probably"}], tmp_path / "bad.csv")
    with pytest.raises(store.ResultFileError, match="bad.csv: claim 'depth-1' has verdict 'probably'"):
        beyond_claims_job([str(tmp_path / "bad.csv")], str(tmp_path / "out.csv"))
    assert not (tmp_path / "out.csv").exists()


def test_claims_summary_gathers_every_table_with_experiment_and_figure(tmp_path):
    """results/claims/summary.csv, and its rst for the report's landing page: rst markup in a
    statement (|x|, u*, a_b) stays text, and each figure is a link to the report's entry."""
    from docutils.core import publish_parts

    from daedyn import claims
    from daedyn.jobs.claims import SUMMARY_COLUMNS, claims_summary_job

    row = {"claim": "1", "statement": "Fig. 2: max |Δu| ≤ 1e-8 for u* and η*_DAE", "measured": "1", "expected": "1",
           "verdict": "confirmed", "note": ""}
    claims.write_claims_csv([row, {**row, "claim": "2", "statement": "no figure named", "verdict": "refuted"}],
                            tmp_path / "theory.csv")
    claims.write_claims_csv([{**row, "claim": "depth: deep WDAE", "verdict": "qualified"}], tmp_path / "depth.csv")
    sources = [{"group": "paper", "experiment": "theory (Figs. 1-4)", "table": str(tmp_path / "theory.csv"),
                "figure": ""},
               {"group": "beyond the paper", "experiment": "depth_mnist", "table": str(tmp_path / "depth.csv"),
                "figure": "results/figures/depth_mnist.png"}]
    claims_summary_job(sources, str(tmp_path / "summary.csv"), str(tmp_path / "summary.rst"))
    with open(tmp_path / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert [(r["experiment"], r["claim"], r["verdict"], r["figure"]) for r in rows] == [
        ("theory (Figs. 1-4)", "1", "confirmed", "results/figures/fig2.png"),
        ("theory (Figs. 1-4)", "2", "refuted", ""),
        ("depth_mnist", "depth: deep WDAE", "qualified", "results/figures/depth_mnist.png")]
    page = (tmp_path / "summary.rst").read_text()
    links = ".. _fig2.png: javascript:show('fig2')\n.. _depth_mnist.png: javascript:show('depth')\n"
    html = publish_parts(page + "\n" + links, writer="html", settings_overrides={"report_level": 1})["body"]
    assert "system-message" not in html
    assert "max |Δu| ≤ 1e-8 for u* and η*_DAE" in html and "<strong>refuted</strong>" in html
    assert 'href="javascript:show(\'depth\')">depth_mnist.png</a>' in html


def test_every_theory_claim_states_its_tolerance_and_what_its_verdict_judged(rows):
    """The findings page's audit (daedyn.findings.audit) flags no row of the paper's theory claims."""
    from daedyn import findings

    flagged = {r["claim"]: findings.audit(r) for r in rows if findings.audit(r)}
    assert not flagged
    assert [r["claim"] for r in rows if not (r["tolerance"] and r["judged_on"])] == []
