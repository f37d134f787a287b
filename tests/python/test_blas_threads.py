"""The dbt Python models run with one BLAS thread unless the user chose a number."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from retail_xsell.blas_threads import THREAD_VARIABLES

PROBE = (
    "import json, sys\n"
    "from retail_xsell.blas_threads import limit_blas_threads\n"
    "limit_blas_threads()\n"
    "import numpy, threadpoolctl\n"
    "numpy.ones((50, 50)) @ numpy.ones((50, 50))\n"
    "info = threadpoolctl.threadpool_info()\n"
    "print(json.dumps([i['num_threads'] for i in info if i['user_api'] == 'blas']))\n"
)


def _blas_threads(extra_env: dict[str, str]) -> list[int]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES} | extra_env
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_blas_loaded_after_the_plugin_runs_one_thread():
    threads = _blas_threads({})
    assert threads and set(threads) == {1}


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to tell 2 from 1")
def test_a_thread_count_the_user_set_is_kept():
    assert set(_blas_threads({"OPENBLAS_NUM_THREADS": "2"})) == {2}
