"""One BLAS thread for the dbt Python models (a dbt-duckdb plugin, profiles.yml).

The CLV and take-up models are numpy/scipy code running inside the dbt process, next
to DuckDB's own threads and dbt's second model thread. OpenBLAS starts one thread per
core for every matrix product; on two cores those threads fight DuckDB and each other:
measured at 10M purchase lines, the two CLV models took 24.1 + 20.2 s with OpenBLAS's
default threads and 4.0 + 3.5 s with one, for identical parameters (issue 12). The
products here are small (a few dozen columns), so one thread loses nothing.

The environment variables cover BLAS libraries not loaded yet (they are read when a
library loads); threadpoolctl limits those already loaded. A value the user set for
OPENBLAS_NUM_THREADS (or the others) is kept.
"""

from __future__ import annotations

import os
from typing import Any

#: The variables BLAS and OpenMP runtimes read for their thread count.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_limits: list[Any] = []


def limit_blas_threads(threads: int = 1) -> None:
    """Run BLAS with ``threads`` threads in this process, unless the user chose otherwise."""
    chosen = [name for name in THREAD_VARIABLES if os.environ.get(name)]
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    if chosen:
        return
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    # Kept referenced: the limit holds for the life of the process.
    _limits.append(threadpool_limits(limits=threads, user_api="blas"))


def _plugin_class() -> type:
    from dbt.adapters.duckdb.plugins import BasePlugin

    class Plugin(BasePlugin):
        """dbt-duckdb plugin: one BLAS thread for the Python models of this process."""

        def initialize(self, plugin_config: dict[str, Any]) -> None:
            limit_blas_threads(int(plugin_config.get("threads", 1)))

    return Plugin


def __getattr__(name: str) -> Any:
    # Built on first use, so importing this module does not import dbt.
    if name == "Plugin":
        globals()["Plugin"] = plugin = _plugin_class()
        return plugin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
