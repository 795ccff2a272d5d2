"""Cohort runs: one task per slide, each where a crash is contained, on this machine or a cluster.

- :mod:`.outcomes`: what happened to each slide, and ``summary.csv``/``summary.json``;
- :mod:`.runner`: the batch job (serial in a child process, a local Dask cluster, or any
  ``distributed`` scheduler by address), with retries counted and crashes recorded;
- :mod:`.cluster`: connecting to a scheduler, starting a quiet local cluster, worker set-up.
"""
