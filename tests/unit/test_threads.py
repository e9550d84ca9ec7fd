"""The thread plan: BLAS pools are limited to one thread once a process runs pipelines."""

from __future__ import annotations

import subprocess
import sys

_BLAS_THREADS = (
    "from threadpoolctl import threadpool_info\n"
    "def blas(): return [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
)


def _run(code: str) -> list[str]:
    env = {"OPENBLAS_NUM_THREADS": "2", "PATH": ""}  # a pool of 2 even on a 1-core runner
    out = subprocess.run(
        [sys.executable, "-c", _BLAS_THREADS + code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return out.stdout.split()


def test_single_threaded_blas_limits_the_pool() -> None:
    code = (
        "import numpy\n"
        "before = blas()\n"
        "from crowdsight.core.threads import single_threaded_blas\n"
        "single_threaded_blas(); single_threaded_blas()\n"
        "print(before, blas())\n"
    )
    assert _run(code) == ["[2]", "[1]"]


def test_a_pipeline_process_runs_blas_single_threaded() -> None:
    # As the CLI does: crowdsight is imported before numpy, then a pipeline is built.
    code = (
        "from crowdsight.pipeline.camera import CameraPipeline\n"
        "from crowdsight.config.pipeline import PipelineSettings\n"
        "CameraPipeline('cam', PipelineSettings(density=False, detect=False))\n"
        "print(sorted(set(blas())))\n"
    )
    assert _run(code) == ["[1]"]  # every BLAS library loaded (numpy's, SciPy's) has one
