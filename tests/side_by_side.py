"""Independent subprocesses of a test module, run side by side: the suite runs on 2 cores and pytest itself only
waits for them, so two at a time take about the wall time of one."""

import subprocess
from concurrent.futures import ThreadPoolExecutor


def run_side_by_side(jobs: dict, workers: int = 2, timeout: int = 600) -> dict:
    """``{name: dict(args=[...], **subprocess.run keywords)}`` -> ``{name: CompletedProcess}`` (text output
    captured). Started in the order given, at most ``workers`` at a time."""

    def one(job):
        job = dict(job)
        return subprocess.run(job.pop('args'), capture_output=True, text=True, timeout=timeout, **job)

    with ThreadPoolExecutor(workers) as pool:
        futures = {name: pool.submit(one, job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}
