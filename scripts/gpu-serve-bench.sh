#!/usr/bin/env bash
# hps serve on the GPU machine against the same server on its CPU: run from
# the repository root on the GPU machine (16 cores, no Swift toolchain) with
# the prebuilt static binaries .device/hps and .device/hps-load (built with
# serving), writing under $OUT (or ./gpu-out). In one run:
#
# - the lookup alone, as `hps bench --device gpu` measures it (its seed
#   batch rows; when DEVICES has gpu and GPU_BENCH is not 0);
# - for each device of DEVICES (default "gpu cpu"): the seed model served by
#   `hps serve --demo --device <device>` (8 tables × 10,000 keys, vec 128,
#   batch 256 × 26 keys per table), and against it, over HTTP and gRPC,
#   seed-predict (53,248 keys in, 256 predictions out) and seed-batch (the
#   53,248 vectors, binary output) closed loop with 1, 4 and 16 connections
#   for MAX_SECONDS each (default 10); then one-sample requests over HTTP
#   open loop at 2,000 and 20,000 req/s for DURATION each (default 20 s).
#   After each run the server's metrics are read: the server's time per
#   request, the part of it spent receiving the body (HTTP only), the
#   lookup's and the GPU lookup's time, the wait before the lookup (the
#   batcher's queue and the hand-off to a lookup thread) and the task's
#   resumption after it; the request's time less the body's arrival and
#   the lookup is the server's own cost beyond the lookup.
#
# The server runs on cores SERVER_CORES (default 0-7, with --threads 8), the
# load generator on LOAD_CORES (default 8-15), both pinned with taskset.
# Every answer is checked by hps-load (status, size; predictions finite).
# A run that fails prints why and is marked failed in the table, and the
# script goes on. The table comes last; every raw JSON line of hps-load is
# kept under $OUT/serve-bench (one file per run, and all of them in load.jsonl).
#
# Environment: DEVICES, MAX_SECONDS, DURATION, CONNECTIONS (default "1 4
# 16"), RATES (default "2000 20000"), OPEN_CONNECTIONS (connections of the
# open loop, default 128: with 32 the generator's own wait for a free
# connection set the p99 at 20,000/s), LOAD_THREADS (hps-load's HTTP event
# loops, default 8), PORT (default 18600: HTTP; +1 gRPC, +2 metrics; +10 for each further
# device), SERVER_CORES, LOAD_CORES, SERVER_THREADS, GPU_BENCH, SERVE_FLAGS
# (extra flags for hps serve), HPS and HPS_LOAD (the binaries).
#
# On the GPU machine: bash scripts/gpu-serve-bench.sh (a binary that is only
# there as .xz, as scripts/build-gpu-binary.sh leaves it, is unpacked first).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}/serve-bench"
mkdir -p "$out"
devices=${DEVICES:-gpu cpu}
max_seconds=${MAX_SECONDS:-10}
duration=${DURATION:-20}
closed_connections=${CONNECTIONS:-1 4 16}
rates=${RATES:-2000 20000}
open_connections=${OPEN_CONNECTIONS:-128}
load_threads=${LOAD_THREADS:-8}
base_port=${PORT:-18600}
server_cores=${SERVER_CORES:-0-7}
load_cores=${LOAD_CORES:-8-15}
server_threads=${SERVER_THREADS:-8}
hps=${HPS:-.device/hps}
hps_load=${HPS_LOAD:-.device/hps-load}
# The rows of the table: device, transport, kind, connections, rate (- for
# closed loop), the run's JSON file (empty when it failed), why it failed,
# and the metrics files read before and after it.
rows="$out/rows.tsv"
: >"$rows"
: >"$out/load.jsonl"

server=
stop_server() {
    [ -n "$server" ] || return 0
    if kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$server" 2>/dev/null; then
            echo "  hps serve (pid $server) did not stop within 30 s of SIGTERM; killing it"
            kill -KILL "$server" 2>/dev/null || true
        fi
    fi
    local rc=0
    wait "$server" 2>/dev/null || rc=$?
    echo "  hps serve stopped (exit status $rc)"
    server=
}
trap stop_server EXIT

# Starts `hps serve --demo --device $1` on $port, its output into the file
# $2, and waits until it is ready (120 s at most). Returns 1, with the
# reason in $why, when it does not get there.
start_server() {
    local device=$1 log=$2
    # shellcheck disable=SC2086
    taskset -c "$server_cores" "$hps" serve --demo --device "$device" --threads "$server_threads" \
        --http-port "$port" --grpc-port $((port + 1)) --metrics-port $((port + 2)) ${SERVE_FLAGS:-} >"$log" 2>&1 &
    server=$!
    local started=$SECONDS deadline=$((SECONDS + 120))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1; then
            ready_seconds=$((SECONDS - started))
            return 0
        fi
        if ! kill -0 "$server" 2>/dev/null; then
            local rc=0
            wait "$server" 2>/dev/null || rc=$?
            server=
            why="hps serve --device $device exited with status $rc before it was ready: $(tail -n 3 "$log" | tr '\n' ' ')"
            return 1
        fi
        sleep 0.2
    done
    why="hps serve --device $device was not ready within 120 s: $(tail -n 3 "$log" | tr '\n' ' ')"
    stop_server
    return 1
}

# The server's metrics now, into $1 (empty when they cannot be read).
read_metrics() {
    curl -s --max-time 10 "http://127.0.0.1:$((port + 2))/metrics" >"$1" 2>/dev/null || : >"$1"
}

# One hps-load run: $1 the run's name, $2 transport, $3 kind, $4 connections,
# $5 rate (- for closed loop), $6 seconds. Adds its row; a run that could not
# measure gets a failed row with hps-load's reason.
load_run() {
    local name=$1 transport=$2 kind=$3 connections=$4 rate=$5 seconds=$6
    local file="$out/$name.json" load_port=$port
    [ "$transport" = grpc ] && load_port=$((port + 1))
    local args=(--transport "$transport" --port "$load_port" --kind "$kind" --connections "$connections"
                --duration "$seconds" --threads "$load_threads" --server-pid "$server" --json)
    [ "$rate" = - ] || args+=(--rate "$rate")
    read_metrics "$out/$name.metrics-before"
    local rc=0
    taskset -c "$load_cores" "$hps_load" "${args[@]}" >"$file" 2>"$out/$name.err" || rc=$?
    read_metrics "$out/$name.metrics-after"
    grep -E '^hps_[a-z0-9_]*(gpu|l1|lookup_seconds|lookup_duration_seconds)' "$out/$name.metrics-after" \
        >"$out/$name.metrics" || true
    local why=
    if [ -s "$file" ] && head -c 1 "$file" | grep -q '{'; then
        cat "$file" >>"$out/load.jsonl"
        [ "$rc" = 0 ] || why="hps-load exit status $rc (failed answers)"
    else
        why="hps-load exit status $rc: $(tail -n 3 "$out/$name.err" | grep -v '^Usage\|See .hps-load' | tr '\n' ' ')"
        rm -f "$file"
        file=
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$device" "$transport" "$kind" "$connections" "$rate" "$file" "$why" \
        "$out/$name.metrics-before" "$out/$name.metrics-after" >>"$rows"
    if [ -n "$file" ]; then
        python3 - "$file" "$name" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
failure = "".join(f"; failure: {reason}" for reason in r.get("failure_reasons", [])[:1])
print(f"  {sys.argv[2]}: {r['requests']} requests, {r['failures']} failed, {r['throughput']:.0f} req/s, "
      f"p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms{failure}")
PY
    else
        echo "  $name failed: $why"
    fi
}

# Rows for every run of a device whose server did not start.
failed_device() {
    local transport kind c rate
    for transport in http grpc; do
        for kind in seed-predict seed-batch; do
            for c in $closed_connections; do
                printf '%s\t%s\t%s\t%s\t-\t\t%s\t\t\n' "$device" "$transport" "$kind" "$c" "$why" >>"$rows"
            done
        done
    done
    for rate in $rates; do
        printf '%s\thttp\tone-sample\t%s\t%s\t\t%s\t\t\n' "$device" "$open_connections" "$rate" "$why" >>"$rows"
    done
}

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | tee "$out/card.txt" || echo "no nvidia-smi"
echo "devices: $devices; closed loop $max_seconds s with $closed_connections connection(s); open loop $duration s at $rates req/s"
echo "server on cores $server_cores (--threads $server_threads), load on cores $load_cores; serve flags: ${SERVE_FLAGS:-none}"
for binary in "$hps" "$hps_load"; do
    # scripts/build-gpu-binary.sh leaves them xz-compressed beside themselves, to travel.
    if [ ! -e "$binary" ] && [ -e "$binary.xz" ]; then xz -dk "$binary.xz" && chmod +x "$binary"; fi
    [ -x "$binary" ] || { echo "$binary is missing or not executable: build it with scripts/build-gpu-binary.sh" >&2; exit 2; }
done

if [[ " $devices " == *" gpu "* ]] && [ "${GPU_BENCH:-1}" != 0 ]; then
    echo
    echo "the lookup alone: $hps bench --device gpu --markdown (kept: the seed batch rows)"
    if "$hps" bench --device gpu --markdown >"$out/gpubench.md" 2>&1; then
        grep -E '^\| (measurement|---|seed batch)' "$out/gpubench.md" | tee "$out/gpubench-seed.md" || true
    else
        echo "hps bench --device gpu failed: $(tail -n 3 "$out/gpubench.md" | tr '\n' ' ')"
    fi
fi

index=0
seen=
for device in $devices; do
    port=$((base_port + 10 * index))
    index=$((index + 1))
    # The runs' files are named by device; a device given twice gets its place too.
    tag=$device
    [[ " $seen " != *" $device "* ]] || tag="$device-$index"
    seen="$seen $device"
    echo
    echo "== hps serve --demo --device $device (HTTP $port, gRPC $((port + 1)), metrics $((port + 2)))"
    why=
    if ! start_server "$device" "$out/serve-$tag.log"; then
        echo "  failed: $why"
        failed_device
        continue
    fi
    echo "  ready after $ready_seconds s"
    # A short warm-up of each kind and transport (first CUDA launches, connection setup), not in the table.
    for transport in http grpc; do
        for kind in seed-predict seed-batch; do
            warm_port=$port
            [ "$transport" = grpc ] && warm_port=$((port + 1))
            taskset -c "$load_cores" "$hps_load" --transport "$transport" --port "$warm_port" --kind "$kind" \
                --connections 2 --duration 1 --json >>"$out/warmup-$tag.jsonl" 2>&1 || echo "  warm-up $transport $kind failed (see $out/warmup-$tag.jsonl)"
        done
    done
    for transport in http grpc; do
        for kind in seed-predict seed-batch; do
            for c in $closed_connections; do
                load_run "$tag-$transport-$kind-c$c" "$transport" "$kind" "$c" - "$max_seconds"
            done
        done
    done
    for rate in $rates; do
        load_run "$tag-http-one-sample-r$rate" http one-sample "$open_connections" "$rate" "$duration"
    done
    echo "  server metrics after the runs (gpu, l1, lookup time; buckets in $out/*.metrics):"
    grep -v '_bucket' "$out/$tag-http-one-sample-r${rates##* }.metrics" 2>/dev/null | sed 's/^/    /' || true
    stop_server
done

python3 - "$rows" <<'PY'
import json, sys

keys_per_batch = 256 * 26 * 8  # the seed batch's keys: 53,248

def metrics(path):
    """Sums over labels of each metric in a Prometheus text file."""
    totals = {}
    try:
        for line in open(path):
            if line.startswith("#") or not line.strip():
                continue
            name = line.split("{")[0].split()[0]
            try:
                totals[name] = totals.get(name, 0.0) + float(line.split()[-1])
            except ValueError:
                pass
    except OSError:
        pass
    return totals

def mean_ms(before, after, histogram):
    """Mean of a seconds histogram over the run, in ms, or '-'."""
    count = after.get(histogram + "_count", 0) - before.get(histogram + "_count", 0)
    total = after.get(histogram + "_sum", 0) - before.get(histogram + "_sum", 0)
    return f"{total / count * 1000:.3f}" if count > 0 else "-"

print()
print("| device | transport | requests | load | req/s | p50 ms | p99 ms | p99.9 ms | failed | M lookups/s | "
      "server ms per request / its body's arrival / lookup / GPU lookup / wait before the lookup / task's resumption after it (means) | requests per lookup | note |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
noted = set()
def once(note):
    """A long note in full the first time, then "as above"."""
    if not note or note not in noted:
        noted.add(note)
        return note[:300]
    return "as above"
for line in open(sys.argv[1]):
    device, transport, kind, connections, rate, file, why, before_path, after_path = (line.rstrip("\n").split("\t") + [""] * 9)[:9]
    load = f"closed, {connections} conn." if rate == "-" else f"open {int(rate):,}/s, {connections} conn."
    if not file:
        print(f"| {device} | {transport} | {kind} | {load} | failed | | | | | | | | {once(why)} |")
        continue
    r = json.load(open(file))
    before, after = metrics(before_path), metrics(after_path)
    server = " / ".join(mean_ms(before, after, h) for h in
                        ("hps_inference_request_duration_seconds", "hps_inference_request_receive_duration_seconds",
                         "hps_lookup_duration_seconds", "hps_gpu_lookup_duration_seconds",
                         "hps_inference_queue_duration_seconds", "hps_lookup_resume_duration_seconds"))
    lookups = after.get("hps_lookup_batch_requests_count", 0) - before.get("hps_lookup_batch_requests_count", 0)
    merged = after.get("hps_lookup_batch_requests_sum", 0) - before.get("hps_lookup_batch_requests_sum", 0)
    per_lookup = f"{merged / lookups:.2f}" if lookups > 0 else "-"
    rate_keys = f"{r['throughput'] * keys_per_batch / 1e6:.1f}" if kind in ("seed-batch", "seed-predict") else "-"
    note = why
    if r.get("failure_reasons"):
        note = (note + "; " if note else "") + r["failure_reasons"][0][:120]
    print(f"| {device} | {transport} | {kind} | {load} | {r['throughput']:.0f} | {r['p50_us'] / 1000:.2f} | "
          f"{r['p99_us'] / 1000:.2f} | {r['p999_us'] / 1000:.2f} | {r['failures']} of {r['requests']} | {rate_keys} | "
          f"{server} | {per_lookup} | {once(note)} |")
PY
