#!/usr/bin/env bash
# run.sh — `make bench-rollout`: VulnZero's rollout figures, printed as
# markdown tables. Not part of `go test`. Needs root (sshd hosts, apt).
#
#  1. Merge-to-first-host latency: BENCH_MERGES (100) merges on the local
#     forge, each followed by a signed push webhook that triggers the running
#     reconciler; p50/p90/p99/max until the first host command starts.
#  2. One stage to BENCH_HOSTS (200) real sshd hosts on loopback (127.0.x.y,
#     started by ../shared/bench/fanout/hosts-up.sh), workloads `true` and the
#     patch-like `sleep 0.2; echo ok > file`, BENCH_REPS (3) runs each, timed
#     in the same run as `ansible all -m raw -f 50` and `parallel-ssh -p 100`
#     (plus their curve25519 variants and the bare Go floor, refssh).
#     VulnZero runs at maxParallel 50 (vs Ansible's 50 forks) and 100 (vs
#     parallel-ssh's 100), and does a whole rollout: every host step written
#     to SQLite before and after, apply.sh then verify.sh on each host.
#
# Env: BENCH_HOSTS=200 BENCH_REPS=3 BENCH_MERGES=100 BENCH_KEEP_HOSTS=1 (leave
# the hosts up) FANOUT=<path of the fan-out harness>.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FANOUT=${FANOUT:-$(cd "$ROOT/../shared/bench/fanout" && pwd)}
N=${BENCH_HOSTS:-200}
REPS=${BENCH_REPS:-3}
MERGES=${BENCH_MERGES:-100}
VZB_DIR=${VZB_DIR:-/tmp/vzbench}
export VZB_DIR
GO=${GO:-go}

bash "$ROOT/bench/rollout/setup.sh"
"$FANOUT/hosts-up.sh" "$N"
if [ "${BENCH_KEEP_HOSTS:-0}" != 1 ]; then
  trap '"$FANOUT/hosts-down.sh" >/dev/null || true' EXIT
fi

BIN=$VZB_DIR/bin/vz-rollout-bench
mkdir -p "$VZB_DIR/bin"
(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o "$BIN" ./bench/rollout)
SSHARGS=(--hosts "$VZB_DIR/hosts.txt" --key "$VZB_DIR/keys/client_ed25519" --known-hosts "$VZB_DIR/known_hosts" --user root)

echo "## Merge-to-first-host latency"
echo
"$BIN" latency "${SSHARGS[@]}" --merges "$MERGES"
echo

echo "## One stage to $N sshd hosts"
echo
RES=$VZB_DIR/results/rollout-n$N-$(date +%Y%m%d-%H%M%S)
# shellcheck disable=SC2016 # expanded by run-peers.sh's bash -c, per run
VZB_CUSTOM_CMD="$BIN"' stage --hosts "$VZB_HOSTS_FILE" --user "$VZB_USER" --key "$VZB_KEY" --known-hosts "$VZB_KNOWN_HOSTS" --concurrency "$VZB_CONC" -- "$VZB_WORKLOAD"' \
VZB_CUSTOM_LABEL=vulnzero VZB_CUSTOM_CONC="50 100" \
VZB_REPS=$REPS VZB_WORKLOADS="true patch" \
VZB_ANSIBLE_FORKS=50 VZB_PSSH_PAR=100 VZB_REF_CONC="50 100" \
VZB_ONLY='^(ansible-raw-plain-f50|ansible-raw-plain-kex25519-f50|pssh-p100|pssh-p50-kex25519|ref-c50|ref-c100|custom-c50|custom-c100)$' \
VZB_RESULTS=$RES \
  "$FANOUT/run-peers.sh" "$N"
echo
echo "### VulnZero against the targets (median wall time; custom-cNN = VulnZero at maxParallel NN)"
echo
python3 - "$RES/runs.tsv" "$N" <<'PY'
import csv, statistics, sys
path, n = sys.argv[1], int(sys.argv[2])
runs = {}
with open(path, newline="") as f:
    for r in csv.DictReader(f, delimiter="\t"):
        ok = r["rc"] == "0" and (int(r["expect_files"]) == 0 or r["out_files"] == r["expect_files"])
        runs.setdefault((r["workload"], r["id"]), []).append((ok, float(r["wall_s"])))
def wall(wl, cid):
    rs = runs.get((wl, cid), [])
    good = [w for ok, w in rs if ok]
    return (statistics.median(good) if good else None), len(good), len(rs)
print("| workload | VulnZero | peer | VulnZero s | peer s | speed-up | target | met |")
print("|---|---|---|---|---|---|---|---|")
for wl in ("true", "patch"):
    for vz, peer, target, need in (("custom-c50", "ansible-raw-plain-f50", "≥ 5× Ansible", 5.0),
                                   ("custom-c100", "pssh-p100", "≥ 1× parallel-ssh", 1.0)):
        v, vok, vn = wall(wl, vz)
        p, pok, pn = wall(wl, peer)
        if v is None or p is None:
            print(f"| {wl} | {vz} ({vok}/{vn} ok) | {peer} ({pok}/{pn} ok) | - | - | - | {target} | no data |")
            continue
        x = p / v
        print(f"| {wl} | {vz} | {peer} | {v:.2f} | {p:.2f} | {x:.1f}× | {target} | {'yes' if x >= need else 'NO'} |")
PY
echo
echo "raw runs, exact command lines and logs: $RES"
