#!/usr/bin/env python3
"""Runs our benchmark binary and the peers' interleaved, and prints a markdown table of
medians and ratios from that one session.

Every (pass, thread count, workload) runs each system once, one after the other, so slow
phases of a noisy shared machine hit all of them alike; the figure reported per system is the
median over passes of its per-run median. The peers are built outside this repository from
shared/bench/peers (see docs/benchmarks.md).

    python3 crates/bench/compare.py --ours target/release/bench \
        --candle PATH/candle_bench --mm PATH/mm_sgemm --mm-threading PATH/mm_sgemm \
        --pytorch "PATH/python PATH/bench.py" --jax "VENV/bin/python PATH/jax/bench.py" \
        --passes 3 --threads 1,2

W1b16 is W1 at batch 16 (the JAX harness runs it as `--only W1 --batch 16`). Every run's peak
resident memory is read from the operating system's accounting of the finished process
(wait4), the same way for every system, and printed for W2. The benchmark binary's own
peer-free ratios (W2 / W1, W1 / its matmul floor) are printed from its "ratios" lines.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

WORKLOADS = ["W1", "W1b16", "W2", "W3", "W4", "W5", "W5t", "W6"]


def run(command, workload, threads, system="ours"):
    """One invocation; returns the workload's JSON record (or None if it did not run), with
    the process's peak resident memory (`child_peak_mib`) and, for ours, the binary's
    peer-free ratios (`ratios`) when it printed them."""
    only = workload
    args = list(command) + ["--threads", str(threads)]
    if workload == "W1b16" and system != "ours":
        only, args = "W1", args + ["--batch", "16"]  # the peers' harnesses take a batch size
    args += ["--only", only]
    if workload == "W6" and "candle_bench" in args[0]:
        args += ["--w6-stack-mib", "256"]  # candle overflows an 8 MiB stack on W6
    env = dict(os.environ)
    if system == "ours":
        env["MATMUL_NUM_THREADS"] = str(threads)  # so the binary does not re-run itself
    # Reaped with wait4 for the child's own rusage: its peak resident memory (and that of the
    # processes it waited for), measured the same way for every system.
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read()
    record = None
    ratios = None
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            parsed = json.loads(line)
            if parsed["id"] == only:
                record = parsed
            elif parsed["id"] == "ratios":
                ratios = parsed
    if record is None and ratios is not None and "," in workload:
        record = {"id": workload, "threads": threads}  # a run for the binary's ratios alone
    if record is None:
        print(f"  {args[0]} {workload} t{threads}: no result ({stderr.strip()[-200:]})", file=sys.stderr)
        return None
    record["id"] = workload
    record["child_peak_mib"] = usage.ru_maxrss / 1024.0
    if ratios:
        record["ratios"] = ratios
    return record


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", required=True)
    parser.add_argument("--candle")
    parser.add_argument("--mm", help="mm_sgemm built without matrixmultiply's threading feature")
    parser.add_argument("--mm-threading", help="mm_sgemm built with it")
    parser.add_argument("--pytorch", help='e.g. "venv/bin/python peers/pytorch/bench.py"')
    parser.add_argument("--jax", help='e.g. "venv/bin/python peers/jax/bench.py" (jit-compiled steps)')
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--json", help="also write every record to this file")
    options = parser.parse_args()

    systems = {"ours": [options.ours]}
    if options.pytorch:
        systems["pytorch"] = shlex.split(options.pytorch)
    if options.jax:
        systems["jax"] = shlex.split(options.jax)
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
                    if workload == "W1b16" and system not in ("ours", "jax", "pytorch"):
                        continue  # only the Python harnesses take a batch size
                    record = run(command, workload, t, system)
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
            # The binary's peer-free ratios need W1, W2 and W5 in one process.
            record = run([options.ours], "W1,W2,W5", t)
            if record and "ratios" in record:
                ratios = dict(record["ratios"], system="ours", id="ratios", threads=t)
                ratios["pass"] = number
                records.append(ratios)
    if options.json:
        with open(options.json, "w") as out:
            json.dump(records, out, indent=1)

    def value(system, workload, t, field="median"):
        found = [r for r in records if r["system"] == system and r["id"] == workload and r["threads"] == t]
        if workload == "W4":
            field = "ns_per_op_median" if field == "median" else field
        numbers = [r[field] for r in found if field in r]
        return statistics.median(numbers) if numbers else None

    units = {"W1": "ms/step", "W1b16": "ms/step", "W2": "ms/step", "W3": "us/step", "W4": "ns/op", "W5": "GFLOP/s", "W5t": "GFLOP/s", "W6": "ms"}
    peers = [s for s in ("jax", "pytorch", "candle", "matrixmultiply") if any(r["system"] == s for r in records)]
    header = "| workload | unit | threads | ours | " + " | ".join(peers) + " | " + " | ".join(f"ours vs {p}" for p in peers) + " |"
    if "jax" in peers:
        header += " ours / jax (time) |"
    print(header)
    print("|" + "---|" * (4 + 2 * len(peers) + ("jax" in peers)))
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
            line = (f"| {workload} | {units[workload]} | {t} | {fmt(ours)} | " + " | ".join(fmt(c) for c in cells)
                    + " | " + " | ".join(ratio(c) for c in cells) + " |")
            if "jax" in peers:
                jax = value("jax", workload, t)
                # Our time over JAX's (the targets' form: < 1 means ours is faster).
                if ours is None or jax is None:
                    line += " - |"
                else:
                    line += f" {(jax / ours if higher_is_better else ours / jax):.2f} |"
            print(line)
    for t in threads:
        w2_w1, floor = value("ours", "ratios", t, "w2_over_w1"), value("ours", "ratios", t, "w1_over_floor")
        if w2_w1 is not None:
            print(f"\nours, {t} thread(s), medians over passes of the binary's own ratios: W2 / W1 {w2_w1:.2f}"
                  + (f", W1 / its matmul floor {floor:.2f}" if floor is not None else ""))
    peaks = [(s, value(s, "W2", 1, "child_peak_mib")) for s in ["ours"] + peers]
    print("\nW2 peak RSS (1 thread, the whole process, from wait4): " + "; ".join(
        f"{s} {peak:.0f} MiB" for s, peak in peaks if peak is not None))
    memory = [(s, value(s, "W6", 1, "above_startup_mib"), value(s, "W6", 1, "vmhwm_kib") or value(s, "W6", 1, "ru_maxrss_kib"))
              for s in ["ours"] + peers]
    if any(hwm for _, _, hwm in memory):
        print("\nW6 memory (1 thread): " + "; ".join(
            f"{s}: peak {hwm / 1024:.0f} MiB" + (f", {above:.1f} MiB above start-up" if above is not None else "")
            for s, above, hwm in memory if hwm))


if __name__ == "__main__":
    main()
