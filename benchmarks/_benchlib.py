"""Helpers shared by bench_curves.py and bench_useradd.py: timing, the I/O floors, a
least-squares fit and the load average. Not a benchmark itself (scripts/bench runs only
bench_*.py)."""

import os
import statistics
import time


def load_average():
    return "%.2f %.2f %.2f" % os.getloadavg()


def measure(fn, reps, budget, at_least=3):
    """Run ``fn()`` ``reps`` times, stopping early (after ``at_least`` runs) once
    ``budget`` seconds are spent. Returns (wall seconds list, CPU seconds list, last
    value). CPU time of this process is printed beside wall time because other work on
    a shared machine stretches wall time far more than CPU time."""
    times, cpus = [], []
    value = None
    spent = 0.0
    while len(times) < reps and (len(times) < at_least or spent < budget):
        start, cpu = time.perf_counter(), time.process_time()
        value = fn()
        took = time.perf_counter() - start
        cpus.append(time.process_time() - cpu)
        times.append(took)
        spent += took
    return times, cpus, value


def median(times):
    return statistics.median(times)


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def durable_write(path, data):
    """The least a crash-safe writer does: a temp file, fsync, rename, fsync of the folder."""
    tmp = path + ".floor-tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def fit(points):
    """Least-squares line through ``points`` [(x, seconds)]: (slope s/x, intercept s, R^2)."""
    n = len(points)
    mx = sum(x for x, y in points) / n
    my = sum(y for x, y in points) / n
    sxx = sum((x - mx) ** 2 for x, y in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for x, y in points)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in points)
    r2 = 1.0 - ss_res / ss_tot if ss_tot else 1.0
    return slope, intercept, r2


def describe_fit(label, unit, points):
    slope, intercept, r2 = fit(points)
    return slope, "%s: %.3f us per %s, intercept %.1f ms, R^2 %.4f" % (
        label, slope * 1e6, unit, intercept * 1e3, r2)
