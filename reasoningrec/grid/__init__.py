"""The experiment grid: dataset x method x K x seed on the pipeline's plan (``reasoningrec grid``).

- :mod:`reasoningrec.grid.jobs`: which calls of each dataset's plan are data, jobs and after-calls,
  and the order the jobs run in;
- :mod:`reasoningrec.grid.pool`: the out-of-memory-aware pool of worker processes sharing a GPU;
- :mod:`reasoningrec.grid.worker`: one job, ``completion.execute`` of its call, in a worker;
- :mod:`reasoningrec.grid.run`: the grid call (data, jobs, after-calls, report);
- :mod:`reasoningrec.grid.saved`: logging, where MLflow is, the runs of a grid made with tracking off.
"""

from reasoningrec.grid.run import GridOptions, exit_code, preview, run_grid

__all__ = ["GridOptions", "exit_code", "preview", "run_grid"]
