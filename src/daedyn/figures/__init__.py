"""Figure drawing for daedyn.

Submodules (import them explicitly; nothing heavy is imported here):

* :mod:`daedyn.figures.style`     — shared matplotlib style, colours and ``save``.
* :mod:`daedyn.figures.scalar`    — the paper's Figures 1–4 from the datasets built by
  :mod:`daedyn.scalar`.
* :mod:`daedyn.figures.linear`    — Figure 5 from a linear experiment's combined dataset.
* :mod:`daedyn.figures.nonlinear` — Figure 6 from a nonlinear experiment's combined dataset.

Every ``plot_*`` function takes an ``xr.Dataset`` and returns a matplotlib Figure; it
draws only what the dataset holds. No module here selects a matplotlib backend, so the
figures display inline in notebooks (see docs/python.md).
"""
