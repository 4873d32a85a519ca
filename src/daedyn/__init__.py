"""daedyn: learning dynamics of linear and nonlinear denoising autoencoders.

Reproduces Pretorius, Kroon & Kamper, "Learning Dynamics of Linear Denoising
Autoencoders" (ICML 2018, arXiv:1806.05413) and extends it. Every module is
plain Python (numpy / xarray / torch) and never imports snakemake, so it can be
used from a notebook as well as from the workflow: ``daedyn.open_experiment(name)``
loads an experiment's runs with their theory (docs/python.md).

Conventions used throughout: the mean convention Σ = XᵀX/N, noise variance ε
(never a standard deviation unless a name says ``std``), weight decay γ,
learning rate η with time constant τ = 1/η, and time t counted in full-batch
gradient-descent steps ("epochs"). Labels cited in docstrings and file attributes (equations
E1–E21, departures from the authors' code D1–D10, claim numbers) are defined in docs/science.md.
"""

__version__ = "0.1.0"

from daedyn.results import open_experiment  # noqa: E402  (needs __version__ above)

__all__ = ["open_experiment", "__version__"]
