"""``tensorfab sweep``: design-space sweeps on Dask distributed (docs/sweep.md).

:mod:`.spec` reads and validates sweep files and makes their points and jobs, :mod:`.job`
measures one job in a subprocess with time and memory limits, :mod:`.engine` runs the jobs on
a Dask cluster into the append-only store ``DIR/results.jsonl``, :mod:`.report` writes the
Pareto report from that store.
"""
