"""What every benchmark shares: the tagged-result subprocess protocol, peak memory, timing of repeated calls."""
import json
import resource
import statistics
import subprocess
import sys
import time

RESULT_TAG = "BENCHMARK_RESULT "


def peak_mb():
    """This process's peak resident memory in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(call, warmup, steps):
    """(first call seconds, median seconds per later call)."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    for _ in range(warmup):
        call()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def print_result(result):
    """A worker's answer: one tagged JSON line on stdout."""
    print(RESULT_TAG + json.dumps(result), flush=True)


def tagged_result(cmd, env=None):
    """Run cmd; the JSON on its stdout line that starts with RESULT_TAG, or {'error': its last stderr line}."""
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}


def worker_command(kind, *args):
    """The command that runs one measurement in a fresh process."""
    return [sys.executable, "-m", "msvision.bench", "--worker", kind] + [str(a) for a in args]
