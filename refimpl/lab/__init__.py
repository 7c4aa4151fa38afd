"""The lab: what every experiment shares. A change here changes every report.

- :mod:`~refimpl.lab.sweep`: the sweep runner and its cache (resume after a
  kill; local workers);
- :mod:`~refimpl.lab.cluster`: sweeps on a dask.distributed cluster (the
  scheduler address and timeout checked, a bounded connection);
- :mod:`~refimpl.lab.seeds`: the one seeding scheme;
- :mod:`~refimpl.lab.measures`: the built-in measures of a sweep;
- :mod:`~refimpl.lab.stats`: the shared statistics and the one significance level;
- :mod:`~refimpl.lab.claim`: a claim as a declaration (protocol in both
  sizes, measure, decide, present) and what the lab writes for it;
- :mod:`~refimpl.lab.suite`: claim modules run into one folder (budgets, replication);
- :mod:`~refimpl.lab.report`: the suite's report (REPORT.md, validate.json);
- :mod:`~refimpl.lab.figures`: every figure (matplotlib's object API; functions take ``ax``);
- :mod:`~refimpl.lab.progress`: progress lines for long work;
- :mod:`~refimpl.lab.job`: the main job of ``python -m refimpl run``;
- :mod:`~refimpl.lab.images`, :mod:`~refimpl.lab.image_experiment`: real images.

The lab imports the model, never the claims, the command line or the cross-check.
"""
