"""The training core: run configurations (schema defaults, validation), the loop driver's cadence,
the stability guard, and the nonlinear collapse detector."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import yaml

from daedyn import data, linear, nonlinear, runconfig, spectrum, theory, training
from daedyn.runconfig import LinearConfig, NonlinearConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small():
    X = np.random.default_rng(0).random((120, 9))
    lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
    return X, lam, V


# ---------------------------------------------------------------------------------------
# run configurations


def test_defaults_come_from_the_schema_file():
    schema = yaml.safe_load(runconfig.SCHEMA_PATH.read_text())
    exp = schema["$defs"]["linear_experiment"]["properties"]
    cfg = LinearConfig.make(hidden=4, lr=0.1, epochs=10)
    for name in ("engine", "log_every", "init_std", "dtype", "device", "batch_size", "shuffle", "allow_unstable"):
        assert getattr(cfg, name) == exp[name]["default"], name
    run = exp["runs"]["additionalProperties"]["properties"]
    assert (cfg.eps, cfg.gamma) == (run["eps"]["default"], run["gamma"]["default"])
    assert cfg.seed == exp["seeds"]["default"][0]
    nl = NonlinearConfig.make(hidden=4, lr=0.1, epochs=10)
    props = schema["$defs"]["nonlinear_experiment"]["properties"]
    assert (nl.init_std, nl.k_modes, nl.activation) == tuple(props[k]["default"] for k in ("init_std", "k_modes",
                                                                                            "activation"))


@pytest.mark.parametrize("field, value, message", [
    ("lr", float("nan"), "lr must be a finite number, got nan"),
    ("lr", float("inf"), "lr must be a finite number"),
    ("lr", 0.0, "lr must be > 0"),
    ("epochs", 100.0, "epochs must be an integer, got 100.0"),
    ("hidden", 0, "hidden must be >= 1"),
    ("eps", -0.5, "eps must be >= 0"),
    ("engine", "magic", "engine must be one of ['exact', 'datapass', 'sampled']"),
    ("allow_unstable", "yes", "allow_unstable must be true or false"),
])
def test_bad_values_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError, match=r"linear run exp/r1: " + message.replace("[", r"\[").replace("]", r"\]")):
        LinearConfig.make(**{"hidden": 4, "lr": 0.1, "epochs": 10, "experiment": "exp", "run": "r1", field: value})


def test_from_params_refuses_unknown_and_missing_keys():
    params = dataclasses.asdict(LinearConfig.make(hidden=4, lr=0.1, epochs=10, n_samples=50))
    assert LinearConfig.from_params(params) == LinearConfig.make(hidden=4, lr=0.1, epochs=10, n_samples=50)
    with pytest.raises(ValueError, match=r"unknown params \['checkpoint_every'\]"):
        LinearConfig.from_params({**params, "checkpoint_every": 5})
    del params["gamma"]
    with pytest.raises(ValueError, match=r"params lack \['gamma'\]"):
        LinearConfig.from_params(params)


def test_config_reaches_the_run_file_once(small):
    X, lam, V = small
    run = linear.train_exact(lam, V, hidden=4, lr=0.1, epochs=10, eps=0.3, gamma=0.05, run="dae", device="cpu")
    ds = run.dataset()
    for name, value in (("eps", 0.3), ("gamma", 0.05), ("lr", 0.1), ("hidden_units", 4), ("engine", "exact")):
        assert ds[name].dims == ("run",) and ds[name].item() == value
    assert not {"eps", "gamma", "lr", "hidden", "engine"} & set(ds.attrs)     # not a second copy in attrs
    assert "train_error" not in ds                                          # loss_reconstruction is it


# ---------------------------------------------------------------------------------------
# the loop driver


def test_records_at_zero_every_k_and_the_last_epoch(small):
    X, lam, V = small
    engine = linear.ExactEngine(LinearConfig.make(hidden=3, lr=0.1, epochs=23, log_every=10, device="cpu"), lam, V)
    rows = []
    engine.record = lambda row, epoch: rows.append((row, epoch)) or 1.0
    loop = training.drive(engine, engine.config)
    assert rows == [(0, 0), (1, 10), (2, 20), (3, 23)]
    np.testing.assert_array_equal(loop.epochs, [0, 10, 20, 23])


def test_a_nonfinite_loss_stops_the_run(small):
    X, lam, V = small
    engine = linear.ExactEngine(LinearConfig.make(hidden=3, lr=0.1, epochs=30, log_every=5, device="cpu"), lam, V)
    losses = iter([1.0, 2.0, float("nan")])
    engine.record = lambda row, epoch: next(losses)
    with pytest.raises(training.DivergenceError, match="diverged by epoch 10 .*eta_max="):
        training.drive(engine, engine.config)


# ---------------------------------------------------------------------------------------
# the stability guard


@pytest.fixture(scope="module")
def mnist_spectrum(mnist_dir_module):
    ds = data.build({"source": "mnist", "split": "train"}, mirror=mnist_dir_module.parent)
    x = data.matrix(ds, 10000)
    return spectrum.eigh_descending(spectrum.second_moment(x)[0])


@pytest.fixture(scope="module")
def mnist_dir_module():
    from conftest import SHARED_MNIST

    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST raw files not found in {SHARED_MNIST}")
    return SHARED_MNIST


def test_mnist_lr_above_the_limit_stops_before_the_first_step(mnist_spectrum, monkeypatch):
    lam, V = mnist_spectrum
    assert lam[0] == pytest.approx(38.3, abs=0.5)
    steps = []
    monkeypatch.setattr(linear.ExactEngine, "step", lambda self, epoch: steps.append(epoch))
    with pytest.raises(training.UnstableLearningRateError) as info:
        linear.train_exact(lam, V, hidden=16, lr=0.05, epochs=10, eps=0.5, experiment="fig5_mnist", run="dae",
                           device="cpu")
    eta_max = theory.stability_limit(lam, 0.5, 0.0, 16)
    text = str(info.value)
    for part in ("fig5_mnist/dae", "lr = 0.05", f"eta_max = {eta_max:.6g}", f"lambda_1 = {lam[0]:.6g}",
                 "Lower lr", "allow_unstable: true"):
        assert part in text, part
    assert steps == []


def test_allow_unstable_trains_with_a_warning_and_is_flagged(small, caplog):
    X, lam, V = small
    eta_max = theory.stability_limit(lam, 0.0, 0.0, 6)
    with caplog.at_level(logging.WARNING, logger="daedyn.training"):
        run = linear.train_exact(lam, V, hidden=6, lr=1.1 * eta_max, epochs=40, init_std=0.1, device="cpu",
                                 dtype="float64", allow_unstable=True, experiment="e", run="ae")
    warning = [r for r in caplog.records if r.levelno == logging.WARNING][0].getMessage()
    assert "e/ae" in warning and "1.1 x" in warning and f"eta_max = {eta_max:.6g}" in warning
    from daedyn import analysis

    combined = analysis.add_theory(run.dataset().drop_vars(["w1", "w2"]), lam, V)
    row = analysis.metrics(combined, [0])[0]
    assert row["above_stability_limit"] == 1 and row["lr_over_eta_max"] == pytest.approx(1.1)
    from daedyn.figures.linear import plot_fig5

    fig = plot_fig5(combined, [0], title="e")
    assert "ae: lr = 1.10 η_max (above the stability limit)" in fig._suptitle.get_text()


def test_the_nonlinear_trainer_warns_but_trains(small, caplog):
    X, lam, V = small
    d = X.shape[1]
    limit = theory.stability_limit(lam[:2], 0.0, 0.0, 3) * d / 2
    with caplog.at_level(logging.WARNING, logger="daedyn.training"):
        config = NonlinearConfig.make(hidden=3, lr=1.5 * limit, epochs=3, k_modes=2, device="cpu",
                                      activation="identity")
        run = nonlinear.train(config, training.Problem(lam, V, X))
    assert "the linear theory's limit" in caplog.text and "training anyway" in caplog.text
    assert run.trajectory["epoch"].values.tolist() == [0, 3]        # trained to the end


def test_a_collapsed_relu_network_fails_with_the_limit_in_the_message(small):
    X, lam, V = small
    d = X.shape[1]
    limit = theory.stability_limit(lam[:3], 0.0, 0.0, 16) * d / 2
    with pytest.raises(training.DivergenceError, match=r"training collapsed by epoch .*eta_max = "):
        nonlinear.train(NonlinearConfig.make(hidden=16, lr=20 * limit, epochs=400, k_modes=3, init_std=0.1,
                                             device="cpu", log_every=10), training.Problem(lam, V, X))
