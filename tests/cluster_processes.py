"""Real dask.distributed processes for the cluster tests (a scheduler and
workers on 127.0.0.1, each in its own session so that a test can kill it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def start_scheduler(folder, env, hang_guard=120):
    """A dask scheduler on 127.0.0.1 (a free port), in its own session:
    (process, address)."""
    file = folder / "scheduler.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + hang_guard
    while not file.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no scheduler started"
        time.sleep(0.2)
    time.sleep(0.2)  # the file is written whole
    return proc, json.loads(file.read_text())["address"]


def start_worker(address, folder, env):
    """One dask worker (one thread) of the scheduler at ``address``."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            address,
            "--nworkers",
            "1",
            "--nthreads",
            "1",
            "--no-dashboard",
            "--local-directory",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
        env=env,
        start_new_session=True,
    )


def end_processes(procs):
    """Kill the processes' sessions and wait for them."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=30)
