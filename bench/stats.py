"""Pure helpers for `make bench`: percentiles, Prometheus histogram quantiles, wrk output parsing and
the printed results table.

Nothing here does I/O, reads the clock or the environment: `run.py` measures, this module only
computes and formats, and `test_stats.py` covers every function (run by `make test`).
"""

import math
import re

MIN_SAMPLES = 30


def percentile(samples, q):
    """The q-th percentile (0..100) of `samples` by linear interpolation between closest ranks
    (NumPy's default, "linear"). Worked example: [10, 20, 30, 40], q=50 -> rank 1.5 -> 25.0;
    q=99 -> rank 2.97 -> 39.7 (test_stats.PercentileTest)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q = {q}, must be within 0..100")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples, min_samples=MIN_SAMPLES):
    """p50/p99 (and n) of a list of milliseconds; `None` percentiles with a note when there are
    fewer than `min_samples`, because a p99 of a handful of samples says nothing."""
    n = len(samples)
    if n < min_samples:
        return {"n": n, "p50": None, "p99": None, "note": f"{n} samples, fewer than {min_samples}: not reported"}
    return {"n": n, "p50": round(percentile(samples, 50), 3), "p99": round(percentile(samples, 99), 3)}


def histogram_quantile(q, buckets):
    """Prometheus' histogram_quantile: `buckets` is [(upper_bound, cumulative_count), ...] including
    (+inf, total); the quantile is interpolated linearly inside the bucket it falls in, and a
    quantile in the +Inf bucket is the largest finite bound. Returns None without observations.
    Worked example: buckets (0.001, 10), (0.005, 30), (+inf, 30); q=0.5 -> rank 15, in the second
    bucket: 0.001 + (0.005 - 0.001) * (15 - 10) / (30 - 10) = 0.002 (test_stats.HistogramTest)."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile q = {q}, must be within 0..1")
    ordered = sorted(buckets, key=lambda b: b[0])
    if not ordered or ordered[-1][1] == 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                finite = [b for b, _ in ordered if not math.isinf(b)]
                return finite[-1] if finite else None
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return None


_BUCKET = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)_bucket\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)')


def histogram_from_exposition(text, name):
    """The buckets of histogram `name` in a Prometheus text exposition, summed over label sets
    other than `le`: [(upper_bound, cumulative_count)], or None when the metric is absent."""
    sums = {}
    for line in text.splitlines():
        match = _BUCKET.match(line.strip())
        if not match or match.group("name") != name:
            continue
        le = None
        for pair in match.group("labels").split(","):
            key, _, value = pair.partition("=")
            if key.strip() == "le":
                le = value.strip().strip('"')
        if le is None:
            continue
        bound = math.inf if le in ("+Inf", "Inf", "inf") else float(le)
        sums[bound] = sums.get(bound, 0.0) + float(match.group("value"))
    if not sums:
        return None
    return sorted(sums.items())


_WRK_UNITS_TIME = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_time_ms(text):
    """A wrk duration ("812.00us", "1.20ms", "2.01s") in milliseconds."""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _WRK_UNITS_TIME[match.group(2)]


def parse_wrk(output):
    """Requests/s, total requests, errors and latency percentiles (ms) from `wrk --latency`."""
    result = {"requests_per_sec": None, "requests": None, "errors": 0, "latency_ms": {}}
    for line in output.splitlines():
        line = line.strip()
        match = re.match(r"^(50|75|90|99)%\s+(\S+)$", line)
        if match:
            result["latency_ms"]["p" + match.group(1)] = round(wrk_time_ms(match.group(2)), 4)
            continue
        match = re.match(r"^Requests/sec:\s+([0-9.]+)", line)
        if match:
            result["requests_per_sec"] = float(match.group(1))
            continue
        match = re.match(r"^(\d+) requests in", line)
        if match:
            result["requests"] = int(match.group(1))
            continue
        match = re.match(r"^Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", line)
        if match:
            result["errors"] += sum(int(g) for g in match.groups())
            continue
        match = re.match(r"^Non-2xx or 3xx responses: (\d+)", line)
        if match:
            result["errors"] += int(match.group(1))
    if result["requests_per_sec"] is None:
        raise ValueError("no Requests/sec line in the wrk output")
    return result


def verdict(value, target, higher_is_better=False):
    """`met`, `missed` or `not measured` for a figure against its target."""
    if value is None:
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "missed"


def fmt(value, unit=""):
    """A figure for the table: None -> "n/a", floats with sensible precision."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if abs(value) >= 100:
            text = f"{value:.0f}"
        elif abs(value) >= 10:
            text = f"{value:.1f}"
        else:
            text = f"{value:.2f}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip() if unit else text


def table(header, rows):
    """A plain-text table (Markdown pipe syntax, so it pastes into the README as it is)."""
    cells = [list(map(str, header))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for idx, row in enumerate(cells):
        lines.append("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
        if idx == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
