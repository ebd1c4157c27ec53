#!/usr/bin/env python3
"""Start-to-ready times of one start of the shop, and their summary over starts.

  startup.py one   STDERR T0_MS BANNER_MS   # one JSON line for a `microshop up`
  startup.py split STDERR T0_MS BANNER_MS   # one JSON line for a `microshop up --split`
  startup.py summary FILE.jsonl             # min / median / max per service over the lines

In one process every service logs "service ready" when it answers; its time
is counted from T0_MS, when the script started the process. In a split shop
the supervisor logs "started" and "up" (the child's banner seen) for each
child, with its pid: a child's time is the difference, the process's own
start to its readiness. bench.sh uses it; it is no tool of its own.
"""
import json
import statistics
import sys
from datetime import datetime


def millis(stamp):
    """Milliseconds since the epoch of a slog RFC 3339 time with nanoseconds."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    whole = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").timestamp()
    # slog writes UTC; strptime read it as local time.
    whole -= datetime.now().astimezone().utcoffset().total_seconds()
    return whole * 1000 + float("0." + (frac or "0")) * 1000


def records(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("{"):
                continue  # a child's prefixed line, or not JSON
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def one(path, t0, banner):
    services = {}
    for r in records(path):
        if r.get("msg") == "service ready" and "service" in r:
            services[r["service"]] = round(millis(r["time"]) - t0)
    return {"mode": "one", "banner_ms": banner, "services": services}


def split(path, t0, banner):
    started, services, pids = {}, {}, {}
    for r in records(path):
        if r.get("service") != "supervisor" or "child" not in r:
            continue
        child = r["child"]
        if r.get("msg") == "started":
            started[child] = millis(r["time"])
            pids[child] = r.get("pid")
        elif r.get("msg") == "up" and child in started and child not in services:
            services[child] = round(millis(r["time"]) - started[child])
    return {"mode": "split", "banner_ms": banner, "services": services, "pids": pids}


def summary(path):
    runs = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    names = ["whole shop (start to banner)"]
    for r in runs:
        for s in r["services"]:
            if s not in names:
                names.append(s)
    print(f"{len(runs)} starts; milliseconds from start to ready")
    print(f"  {'':30} {'min':>6} {'median':>6} {'max':>6}")
    for n in names:
        if n == names[0]:
            vals = [r["banner_ms"] for r in runs]
        else:
            vals = [r["services"][n] for r in runs if n in r["services"]]
        if vals:
            print(f"  {n:30} {min(vals):6.0f} {statistics.median(vals):6.0f} {max(vals):6.0f}")


def main(argv):
    if len(argv) == 3 and argv[1] == "summary":
        summary(argv[2])
        return 0
    if len(argv) == 5 and argv[1] in ("one", "split"):
        fn = one if argv[1] == "one" else split
        print(json.dumps(fn(argv[2], float(argv[3]), int(argv[4]))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
