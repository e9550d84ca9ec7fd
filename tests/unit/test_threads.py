"""The thread plan: BLAS pools are limited to one thread once a process runs pipelines."""

from __future__ import annotations

import subprocess
import sys


def test_single_threaded_blas_limits_the_pool() -> None:
    code = (
        "import numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "before = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "from crowdsight.core.threads import single_threaded_blas\n"
        "single_threaded_blas(); single_threaded_blas()\n"
        "after = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "print(before, after)\n"
    )
    env = {"OPENBLAS_NUM_THREADS": "2", "PATH": ""}  # a pool of 2 even on a 1-core runner
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    before, after = out[0], out[1]
    assert before == "[2]" and after == "[1]"
