"""Figure drawing for daedyn.

Submodules (import them explicitly; nothing heavy is imported here):

* :mod:`daedyn.figures.style`  — shared matplotlib style, colours and ``save``.
* :mod:`daedyn.figures.scalar` — the paper's Figures 1–4 from the datasets built by
  :mod:`daedyn.scalar`.

Every ``plot_*`` function takes an ``xr.Dataset`` and returns a matplotlib Figure; it
draws only what the dataset holds.
"""
