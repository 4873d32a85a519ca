"""daedyn: learning dynamics of linear and nonlinear denoising autoencoders.

Reproduces Pretorius, Kroon & Kamper, "Learning Dynamics of Linear Denoising
Autoencoders" (ICML 2018, arXiv:1806.05413) and extends it. Every module is
plain Python (numpy / xarray / torch) and never imports snakemake, so it can be
used from a notebook as well as from the workflow.

Conventions used throughout: the mean convention Σ = XᵀX/N, noise variance ε
(never a standard deviation unless a name says ``std``), weight decay γ,
learning rate η with time constant τ = 1/η, and time t counted in full-batch
gradient-descent steps ("epochs").
"""

__version__ = "0.1.0"
