"""A trivial loop over the training driver's Engine protocol, for engine tests only."""

from __future__ import annotations

from daedyn.linear import log_epochs


def drive(engine, epochs: int, log_every: int = 1):
    """Record at the logged epochs and step otherwise; return the engine's trajectory dataset."""
    logged = log_epochs(epochs, log_every)
    row = 0
    for t in range(epochs + 1):
        if row < len(logged) and t == logged[row]:
            engine.record(row, t)
            row += 1
        if t == epochs:
            break
        engine.step(t)
    return engine.dataset(logged)
