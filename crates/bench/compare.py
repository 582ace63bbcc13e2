#!/usr/bin/env python3
"""Runs our benchmark binary and the peers' interleaved, and prints a markdown table of
medians and ratios from that one session.

Every (pass, thread count, workload) runs each system once, one after the other, so slow
phases of a noisy shared machine hit all of them alike; the figure reported per system is the
median over passes of its per-run median. The peers are built outside this repository from
shared/bench/peers (see docs/benchmarks.md).

    python3 crates/bench/compare.py --ours target/release/bench \
        --candle PATH/candle_bench --mm PATH/mm_sgemm --mm-threading PATH/mm_sgemm \
        --pytorch "PATH/python PATH/bench.py" --passes 3 --threads 1,2
"""

import argparse
import json
import shlex
import statistics
import subprocess
import sys

WORKLOADS = ["W1", "W2", "W3", "W4", "W5", "W5t", "W6"]


def run(command, workload, threads):
    """One invocation; returns the workload's JSON record (or None if it did not run)."""
    args = list(command) + ["--threads", str(threads), "--only", workload]
    if workload == "W6" and "candle_bench" in args[0]:
        args += ["--w6-stack-mib", "256"]  # candle overflows an 8 MiB stack on W6
    result = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            record = json.loads(line)
            if record["id"] == workload:
                return record
    print(f"  {args[0]} {workload} t{threads}: no result ({result.stderr.strip()[-200:]})", file=sys.stderr)
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", required=True)
    parser.add_argument("--candle")
    parser.add_argument("--mm", help="mm_sgemm built without matrixmultiply's threading feature")
    parser.add_argument("--mm-threading", help="mm_sgemm built with it")
    parser.add_argument("--pytorch", help='e.g. "venv/bin/python peers/pytorch/bench.py"')
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--json", help="also write every record to this file")
    options = parser.parse_args()

    systems = {"ours": [options.ours]}
    if options.pytorch:
        systems["pytorch"] = shlex.split(options.pytorch)
    if options.candle:
        systems["candle"] = [options.candle]
    workloads = [w for w in options.only.split(",") if w]
    threads = [int(t) for t in options.threads.split(",")]
    records = []
    for number in range(options.passes):
        for t in threads:
            for workload in workloads:
                for system, command in systems.items():
                    if system != "ours" and workload == "W5t":
                        continue  # the peers have no transposed variant
                    record = run(command, workload, t)
                    if record:
                        record["system"], record["pass"] = system, number
                        records.append(record)
                if workload in ("W5", "W5t"):
                    mm = options.mm_threading if t > 1 else options.mm
                    if mm:
                        record = run([mm], "W5", t)
                        if record:
                            record["system"], record["pass"], record["id"] = "matrixmultiply", number, workload
                            records.append(record)
                print(f"pass {number + 1}, {t} thread(s), {workload} done", file=sys.stderr)
    if options.json:
        with open(options.json, "w") as out:
            json.dump(records, out, indent=1)

    def value(system, workload, t, field="median"):
        found = [r for r in records if r["system"] == system and r["id"] == workload and r["threads"] == t]
        if workload == "W4":
            field = "ns_per_op_median" if field == "median" else field
        numbers = [r[field] for r in found if field in r]
        return statistics.median(numbers) if numbers else None

    units = {"W1": "ms/step", "W2": "ms/step", "W3": "us/step", "W4": "ns/op", "W5": "GFLOP/s", "W5t": "GFLOP/s", "W6": "ms"}
    peers = [s for s in ("pytorch", "candle", "matrixmultiply") if any(r["system"] == s for r in records)]
    header = "| workload | unit | threads | ours | " + " | ".join(peers) + " | " + " | ".join(f"ours vs {p}" for p in peers) + " |"
    print(header)
    print("|" + "---|" * (4 + 2 * len(peers)))
    for workload in workloads:
        for t in threads:
            ours = value("ours", workload, t)
            cells = [value(p, workload, t) for p in peers]
            higher_is_better = workload in ("W5", "W5t")

            def ratio(peer):
                if ours is None or peer is None:
                    return "-"
                # Speed-up of ours over the peer: > 1 means ours is better.
                return f"{(ours / peer if higher_is_better else peer / ours):.2f}x"

            fmt = lambda v: "-" if v is None else (f"{v:.3g}" if v < 100 else f"{v:.0f}")
            print(f"| {workload} | {units[workload]} | {t} | {fmt(ours)} | " + " | ".join(fmt(c) for c in cells)
                  + " | " + " | ".join(ratio(c) for c in cells) + " |")
    memory = [(s, value(s, "W6", 1, "above_startup_mib"), value(s, "W6", 1, "vmhwm_kib") or value(s, "W6", 1, "ru_maxrss_kib"))
              for s in ["ours"] + peers]
    print("\nW6 memory (1 thread): " + "; ".join(
        f"{s}: peak {hwm / 1024:.0f} MiB" + (f", {above:.1f} MiB above start-up" if above is not None else "")
        for s, above, hwm in memory if hwm))


if __name__ == "__main__":
    main()
