"""The one engine contract: every engine (ten one-run engines, three batched ones) derives from
:class:`daedyn.training.Engine`, exposes every member it declares, and resumes from a checkpoint to
exactly the uninterrupted result."""

import dataclasses
from functools import partial

import numpy as np
import pytest
import torch
import xarray as xr

from daedyn import (depth, depth_batched, linear, linear_batched, masking, masking_batched, nonlinear, nonlinear_online,
                    nonlinear_theory, sampled_engines, training)
from daedyn.runconfig import DepthConfig, LinearConfig, MaskingConfig, NonlinearConfig
from test_depth import interrupted_and_resumed

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, D = 24, 5
COMMON = dict(hidden=3, lr=0.05, epochs=12, seed=1, log_every=2, dtype="float64", device="cpu")


def _linear(engine: str, **kw) -> LinearConfig:
    return LinearConfig.make(engine=engine, eps=0.3, gamma=0.05, n_samples=N, **COMMON, **kw)


def _second_of_a_batch(config, problem, **runtime):
    """The batched exact engine's run of ``config``, trained beside a run of other lr, eps and seed."""
    other = dataclasses.replace(config, lr=0.03, eps=0.0, seed=2, run="other")
    return linear_batched.train_batch([other, config], problem, **runtime)[1]


def _batched(train_batch, **other):
    """A family's train_batch as a one-run train: the run of ``config`` from a batch with a second run
    that differs by ``other``."""
    def train(config, problem, **runtime):
        return train_batch([config, dataclasses.replace(config, run="other", **other)], problem, **runtime)[0]
    return train


#: every engine -> a tiny configuration and its family's train(config, problem, **runtime); minibatch
#: engines shuffle (batch 7 of 24 rows), so resuming must also continue their generators
ENGINES = {
    linear.ExactEngine: (_linear("exact"), linear.train),
    linear_batched.BatchedExactEngine: (_linear("exact"), _second_of_a_batch),
    linear.DatapassEngine: (_linear("datapass"), linear.train),
    linear.SampledEngine: (_linear("sampled", batch_size=7), linear.train),
    nonlinear.NonlinearEngine: (NonlinearConfig.make(noise_std=0.3, weight_decay=0.01, k_modes=3, batch_size=7,
                                                     n_samples=N, **COMMON), nonlinear.train),
    depth.DepthEngine: (DepthConfig.make(depth=3, eps=0.3, gamma=0.05, init="random", init_std=0.3, **COMMON),
                        depth.train),
    masking.MarginalMaskingEngine: (MaskingConfig.make(engine="marginal", q=0.7, gamma=0.05, **COMMON),
                                    masking.train),
    depth_batched.BatchedDepthEngine: (DepthConfig.make(depth=3, eps=0.3, gamma=0.05, init="random", init_std=0.3, **COMMON),
                               _batched(depth_batched.train_batch, lr=0.03, seed=2)),
    masking_batched.BatchedMaskingEngine: (MaskingConfig.make(engine="marginal", q=0.7, gamma=0.05, **COMMON),
                                   _batched(masking_batched.train_batch, q=0.5, seed=2)),
    masking.SampledMaskingEngine: (MaskingConfig.make(engine="sampled", q=0.7, gamma=0.05, batch_size=7, n_samples=N,
                                                      **COMMON), masking.train),
    sampled_engines.SeedBatchSampledEngine: (_linear("sampled", batch_size=7),
                                             partial(sampled_engines.train_seed_batch, seeds=[1, 2], modes=[0, 2])),
    sampled_engines.FixedCopyEngine: (_linear("datapass", batch_size=7), sampled_engines.train_fixed_copy),
    # online SGD on fresh Gaussian samples: 12 records of 2 steps each (record_every * dim = 2)
    nonlinear_online.OnlineEngine: (nonlinear_theory.NonlinearTheoryConfig.make(
        dim=20, hidden=3, seeds=2, time=1.2, record_every=0.1, noise_var=[0.0, 0.5], device="cpu"),
        nonlinear_online.train),
}

#: what every engine has once built: the base's methods and declared attributes, and what its
#: constructor and guard set
MEMBERS = ({name for name in vars(training.Engine) if not name.startswith("_")} | set(training.Engine.__annotations__)
           | {"config", "lam", "device", "dtype", "given", "records", "eta_max"})


@pytest.fixture(scope="module")
def problem() -> training.Problem:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D)) * np.array([1.5, 1.0, 0.7, 0.4, 0.2])
    lam, V = np.linalg.eigh(X.T @ X / N)
    return training.Problem(lam[::-1].copy(), V[:, ::-1].copy(), X)


class _Built(Exception):
    """Raised instead of driving: the engine is built, its run is not needed."""


def _build(engine_cls, problem, monkeypatch):
    """The engine that the family's train builds for ``engine_cls``'s configuration."""
    config, train = ENGINES[engine_cls]
    built = []

    def capture(engine, *args, **kwargs):
        built.append(engine)
        raise _Built

    monkeypatch.setattr(training, "drive", capture)
    with pytest.raises(_Built):
        train(config, problem)
    return built[0]


def _subclasses(cls) -> set:
    return {c for sub in cls.__subclasses__() for c in {sub} | _subclasses(sub)}


def test_the_thirteen_engines_are_every_engine():
    concrete = {c for c in _subclasses(training.Engine) if not c.__name__.startswith("_")}
    assert concrete == set(ENGINES) and len(ENGINES) == 13


@pytest.mark.parametrize("engine_cls", list(ENGINES), ids=lambda c: c.__name__)
def test_every_engine_exposes_the_members_the_base_declares(engine_cls, problem, monkeypatch):
    engine = _build(engine_cls, problem, monkeypatch)
    assert type(engine) is engine_cls and isinstance(engine, training.Engine)
    assert not [name for name in sorted(MEMBERS) if not hasattr(engine, name)]
    assert all(torch.is_tensor(t) for t in engine.state().values()) and engine.state()
    assert all(isinstance(g, torch.Generator) for g in engine.generators().values())
    assert set(engine.derived()) <= set(training.DERIVED_META) and "n_steps" in engine.derived()
    assert len(engine.final_weights()) == 2 and engine.W1_0.dtype == torch.float64
    assert "eta_max" in engine.divergence_note() and engine.fingerprint()
    assert engine.records == len(training.log_epochs(engine.config.epochs, engine.config.log_every))


@pytest.mark.parametrize("engine_cls", list(ENGINES), ids=lambda c: c.__name__)
def test_every_engine_resumes_bit_identically(engine_cls, problem, tmp_path, monkeypatch):
    config, train = ENGINES[engine_cls]
    reference = train(config, problem)
    resumed = interrupted_and_resumed(lambda ckpt: train(config, problem, checkpoint=ckpt), tmp_path / "run.ckpt",
                                      every=4, killed_at=8, monkeypatch=monkeypatch)
    xr.testing.assert_identical(resumed.trajectory, reference.trajectory)
    for name in ("W1", "W2", "W1_init", "W2_init"):
        assert np.array_equal(getattr(resumed, name), getattr(reference, name)), name
    assert resumed.resumed_from == [8]
