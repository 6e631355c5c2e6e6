#!/usr/bin/env bash
# The workflow on a real SLURM cluster of one node (this machine), against a local run.
#
#   tests/slurm/run.sh          (root; .ci/run calls it after `make test`)
#
# 1. Installs Debian's slurm-wlm if missing, writes /etc/slurm/slurm.conf, starts munged,
#    slurmctld and slurmd, and waits for the node to be idle.
# 2. Generates two small synthetic recording sessions and a configuration listing both.
# 3. SLURM: runs both sessions through profiles/slurm (the workflow profile) and a site profile,
#    cancels (scancel) one running job of $STAGE halfway, reruns the same command, and checks that
#    only the cancelled job and what depends on it ran again.
# 4. Local: runs the same configuration with profiles/default uninterrupted (the reference), and
#    once more killing snakemake and its jobs (kill -9) during $STAGE, then reruns the same
#    command, which removes the killed run's Snakemake lock itself.
# 5. Every output of both resumed runs equals the reference (tests/slurm/compare.py) and no
#    half-written temporary is left.
# Each run is waited for by the state of its jobs (squeue), its processes and its output, not for
# a fixed time: it is stopped only when nothing has moved for $NEURODICT_SLURM_STALL_S seconds,
# and then unlocked (--unlock) so that the next run does not fail on the lock it left.
# Stops the daemons it started, by PID, on exit. Prints "SKIP: ..." and exits 0 where it cannot
# run (not root, or slurm-wlm cannot be installed, or another SLURM is configured here).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${NEURODICT_BIN:-$REPO/.venv/bin}
STAGE=${NEURODICT_SLURM_STAGE:-sort}   # the stage interrupted in both resume checks (one job per group)
# a run with no job queued or running, no job process and no new file for this long is stuck
STALL_S=${NEURODICT_SLURM_STALL_S:-300}
SLURM_CONF=/etc/slurm/slurm.conf
MARK="# written by neurodict tests/slurm/run.sh"
export PATH="$BIN:$PATH"

say() { echo "slurm-test: $*"; }
skip() { echo "SKIP: tests/slurm/run.sh: $*"; exit 0; }
fail() { echo "FAIL: tests/slurm/run.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (installs slurm-wlm and starts munged, slurmctld, slurmd)"
"$BIN/python" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
    || fail "snakemake-executor-plugin-slurm is not installed in $BIN (run make install)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v munged >/dev/null; then
    say "installing slurm-wlm"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm; } \
        >/dev/null 2>&1 || skip "apt-get cannot install slurm-wlm here"
fi
if [ -e "$SLURM_CONF" ] && ! grep -qF "$MARK" "$SLURM_CONF"; then
    skip "$SLURM_CONF exists and was not written by this test; leaving that cluster alone"
fi
if [ -e "$SLURM_CONF" ] && timeout 5 scontrol ping 2>/dev/null | grep -q "is UP"; then
    skip "a SLURM controller already answers here; leaving it alone"
fi

WORK=$(mktemp -d /tmp/neurodict-slurm.XXXXXX)
STARTED_PIDS=()
cleanup() {
    local rc=$?
    if [ ${#STARTED_PIDS[@]} -gt 0 ]; then
        local ids=()
        mapfile -t ids < <(squeue -h -o %i 2>/dev/null || true)
        [ ${#ids[@]} -eq 0 ] || scancel "${ids[@]}" 2>/dev/null || true
        kill "${STARTED_PIDS[@]}" 2>/dev/null || true
        for pid in "${STARTED_PIDS[@]}"; do
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        done
    fi
    rm -f "$SLURM_CONF"
    if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else echo "slurm-test: kept $WORK" >&2; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# --- a one-node cluster -------------------------------------------------------------------------
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024) - 2000}' /proc/meminfo)
[ "$MEM_MB" -le 20000 ] || MEM_MB=20000
mkdir -p "$WORK/slurm/state" "$WORK/slurm/spool" /etc/slurm
cat > "$SLURM_CONF" <<EOF
$MARK ($WORK); removed when it ends
ClusterName=neurodict-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/slurm/state
SlurmdSpoolDir=$WORK/slurm/spool
SlurmctldPidFile=$WORK/slurm/slurmctld.pid
SlurmdPidFile=$WORK/slurm/slurmd.pid
SlurmctldLogFile=$WORK/slurm/slurmctld.log
SlurmdLogFile=$WORK/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

if ! { munge -n | unmunge; } >/dev/null 2>&1; then
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    [ -s /etc/munge/munge.key ] || mungekey --create >/dev/null
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    runuser -u munge -- munged
    STARTED_PIDS+=("$(cat /run/munge/munged.pid)")
fi
slurmctld -D -c >"$WORK/slurm/slurmctld.out" 2>&1 &
STARTED_PIDS+=("$!")
slurmd -D -N localhost >"$WORK/slurm/slurmd.out" 2>&1 &
STARTED_PIDS+=("$!")
for _ in $(seq 150); do
    sinfo -h -N -o %t 2>/dev/null | grep -qx idle && break
    sleep 0.2
done
sinfo -h -N -o %t | grep -qx idle || fail "the node did not become idle: $(sinfo -N 2>&1)"
say "cluster up: $(sinfo -h -N -o '%N %t %c CPUs %m MB')"

# --- two recording sessions ---------------------------------------------------------------------
for n in 1 2; do
    neurodict synth --out "$WORK/data/s$n" --n-regions 2 --units-per-region 3 --duration-s 30 \
        --fs-hz 10000 --seed "$n" >"$WORK/synth-s$n.log" 2>&1 || fail "synth: $WORK/synth-s$n.log"
done
# Smaller CV and permutation paths than the defaults: minutes become seconds, every stage runs.
cat > "$WORK/config.yaml" <<EOF
sessions:
  s1: $WORK/data/s1/session.yaml
  s2: $WORK/data/s2/session.yaml
results_dir: results
lfpdict: {lambda_fractions: [0.1, 0.01], ridge_alphas: [0.01, 1.0], n_folds: 3, n_outer: 3,
          n_inner: 50, n_null: 3}
clusters: {n_boot: 5, n_perm: 50}
EOF
# The site profile a lab would keep in ~/.config/snakemake/: here no accounts and no accounting
# database, so job states come from squeue.
mkdir -p "$WORK/site"
cat > "$WORK/site/config.yaml" <<EOF
default-resources:
  slurm_partition: debug
slurm-no-account: true
slurm-status-command: squeue
slurm-init-seconds-before-status-checks: 1
EOF

PROBLEMS=()
# activity PGID DIR: a line that changes while a run works. SLURM jobs queued, running or
# completing (a job that runs for long changes nothing else), the processes of the run's group
# (snakemake and its local jobs) and the newest file in its workflow directory.
activity() {
    local pgid=$1 dir=$2 jobs procs newest
    jobs=$(squeue -h -o '%i %t' 2>/dev/null | tr '\n' ' ' || true)
    procs=$(pgrep -g "$pgid" 2>/dev/null | wc -l || true)
    newest=$(find "$dir" -type f -printf '%T@ %s\n' 2>/dev/null | sort -n | tail -1 || true)
    echo "$jobs|$procs|$newest"
}
# busy ACTIVITY: whether a job is queued or running, or a job process runs beside snakemake.
busy() {
    local jobs=${1%%|*} rest=${1#*|}
    [ -n "${jobs// /}" ] || [ "${rest%%|*}" -gt 1 ]
}
# wait_run PID DIR ARGS...: wait for the snakemake started as PID (leading its own process group)
# in workflow directory DIR; stop it only when nothing has moved for $STALL_S s, then unlock DIR
# with ARGS (its profile arguments) and return 124. Otherwise returns snakemake's exit status.
wait_run() {
    local pid=$1 dir=$2; shift 2
    local last=$SECONDS mark="" now
    while kill -0 "$pid" 2>/dev/null; do
        now=$(activity "$pid" "$dir")
        if busy "$now" || [ "$now" != "$mark" ]; then
            mark=$now
            last=$SECONDS
        elif [ $((SECONDS - last)) -ge "$STALL_S" ]; then
            PROBLEMS+=("nothing moved for $STALL_S s in the run of $LAST_LOG; it was stopped")
            say "nothing moved for $STALL_S s: stopping the run of $LAST_LOG and unlocking $dir"
            kill -9 -- "-$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            snakemake --snakefile "$REPO/Snakefile" --directory "$dir" \
                --configfile "$WORK/config.yaml" "$@" --unlock >"$LAST_LOG.unlock" 2>&1 \
                || say "--unlock failed: $LAST_LOG.unlock"
            return 124
        fi
        sleep 1
    done
    local rc=0
    wait "$pid" || rc=$?
    return "$rc"
}
# snakemake_in DIR PROFILE-ARGS...: one run in workflow directory DIR, its output in DIR/run-N.log.
snakemake_in() {
    local dir=$1; shift
    mkdir -p "$dir"
    local n; n=$(find "$dir" -maxdepth 1 -name 'run-*.log' | wc -l)
    LAST_LOG="$dir/run-$((n + 1)).log"
    setsid snakemake --snakefile "$REPO/Snakefile" --directory "$dir" \
        --configfile "$WORK/config.yaml" "$@" >"$LAST_LOG" 2>&1 &
    wait_run "$!" "$dir" "$@"
}
# jobs_run LOG: "rule count" lines of the job-stats table of that run.
jobs_run() {
    awk '/^Job stats:/ {on=1; next} on && /^total/ {exit}
         on && NF == 2 && $2 ~ /^[0-9]+$/ {print $1, $2}' "$1"
}
SLURM_ARGS=(--workflow-profile "$REPO/profiles/slurm" --profile "$WORK/site" --max-threads "$CPUS")

# --- SLURM: both sessions, one $STAGE job cancelled halfway, then the same command again --------
say "SLURM run; cancelling one running $STAGE job"
T0=$SECONDS
(
    # the watcher: records how many jobs ran at once; cancels a running $STAGE job once a log of
    # that stage has output (the step itself is running, not Snakemake's start in the job)
    cancelled=""
    while [ -z "$cancelled" ]; do
        squeue -h -t R -o '%i %k' >"$WORK/squeue.now" 2>/dev/null || true
        wc -l <"$WORK/squeue.now" >>"$WORK/running.counts"
        if [ -n "$(find "$WORK/slurm-run/results/logs" -path "*$STAGE*" -size +0 2>/dev/null)" ]
        then
            while read -r id comment; do
                case $comment in
                    "rule_${STAGE}_wildcards_"*)
                        sleep 1
                        wildcards=${comment#rule_"${STAGE}"_wildcards_}
                        scancel "$id" && cancelled="$id $((SECONDS - T0)) $wildcards"
                        echo "$cancelled" >"$WORK/cancelled"
                        break ;;
                esac
            done <"$WORK/squeue.now"
        fi
        sleep 0.2
    done
) &
WATCHER=$!
if snakemake_in "$WORK/slurm-run" "${SLURM_ARGS[@]}"; then
    kill "$WATCHER" 2>/dev/null || true
    fail "the SLURM run finished although a $STAGE job was to be cancelled (see $LAST_LOG)"
fi
kill "$WATCHER" 2>/dev/null || true
wait "$WATCHER" 2>/dev/null || true
[ -s "$WORK/cancelled" ] || fail "no $STAGE job was cancelled; the run failed otherwise: $LAST_LOG"
read -r JOB AT_S WILDCARDS <"$WORK/cancelled"
say "cancelled SLURM job $JOB ($STAGE of $WILDCARDS) at $AT_S s; the run ended at" \
    "$((SECONDS - T0)) s; at most $(sort -n "$WORK/running.counts" | tail -1) jobs ran at once"
grep -q "CANCELLED" "$LAST_LOG" || fail "the run did not report the cancelled job: $LAST_LOG"
T0=$SECONDS
snakemake_in "$WORK/slurm-run" "${SLURM_ARGS[@]}" || fail "the SLURM rerun failed: $LAST_LOG"
RERUN=$(jobs_run "$LAST_LOG" | sort | tr ' \n' '= ')
say "SLURM rerun: $((SECONDS - T0)) s; jobs: $RERUN"
[ "$(jobs_run "$LAST_LOG" | awk '$1 == "'"$STAGE"'" {print $2}')" = 1 ] \
    || fail "the rerun did not redo exactly one $STAGE job: $RERUN"
for early in ingest preprocess detect; do
    [ "$early" = "$STAGE" ] && continue
    ! jobs_run "$LAST_LOG" | grep -q "^$early " || fail "the rerun redid finished $early jobs: $RERUN"
done

# --- local: the reference, and a run whose snakemake is killed during $STAGE ---------------------
T0=$SECONDS
snakemake_in "$WORK/local-run" --profile "$REPO/profiles/default" \
    || fail "the local reference run failed: $LAST_LOG"
say "local reference run: $((SECONDS - T0)) s"

say "local run; kill -9 of snakemake and its jobs during $STAGE"
T0=$SECONDS
mkdir -p "$WORK/killed-run"
setsid snakemake --snakefile "$REPO/Snakefile" \
    --directory "$WORK/killed-run" --configfile "$WORK/config.yaml" \
    --profile "$REPO/profiles/default" >"$WORK/killed-run.log" 2>&1 &
KILLED=$!
SEEN_AT=$SECONDS
SEEN=""
until compgen -G "$WORK/killed-run/results/logs/*/$STAGE*.log" >/dev/null; do
    kill -0 "$KILLED" 2>/dev/null || fail "the local run ended before $STAGE: $WORK/killed-run.log"
    NOW=$(activity "$KILLED" "$WORK/killed-run")
    if busy "$NOW" || [ "$NOW" != "$SEEN" ]; then SEEN=$NOW; SEEN_AT=$SECONDS; fi
    [ $((SECONDS - SEEN_AT)) -lt "$STALL_S" ] \
        || fail "the local run did not reach $STAGE; nothing moved for $STALL_S s: $WORK/killed-run.log"
    sleep 0.2
done
sleep 2
kill -9 -- "-$KILLED"   # setsid: the process group of snakemake and its jobs
wait "$KILLED" 2>/dev/null || true
say "killed after $((SECONDS - T0)) s"
T0=$SECONDS
KILL_ARGS=(--profile "$REPO/profiles/default")
if ! snakemake_in "$WORK/killed-run" "${KILL_ARGS[@]}"; then
    grep -q "cannot be locked" "$LAST_LOG" || fail "the rerun after kill -9 failed: $LAST_LOG"
    # the workflow should have removed the killed run's lock itself; unlock, go on, report it
    PROBLEMS+=("the rerun after kill -9 stopped at Snakemake's lock: $LAST_LOG")
    snakemake_in "$WORK/killed-run" "${KILL_ARGS[@]}" --unlock || fail "--unlock failed: $LAST_LOG"
    snakemake_in "$WORK/killed-run" "${KILL_ARGS[@]}" \
        || fail "the rerun after kill -9 and --unlock failed: $LAST_LOG"
elif ! grep -q "removed Snakemake's lock left by a killed run" "$LAST_LOG"; then
    PROBLEMS+=("the rerun after kill -9 did not say it removed the killed run's lock: $LAST_LOG")
fi
RERUN=$(jobs_run "$LAST_LOG" | sort | tr ' \n' '= ')
say "local rerun after kill -9: $((SECONDS - T0)) s; jobs: $RERUN"
jobs_run "$LAST_LOG" | grep -q "^$STAGE " || fail "the rerun did not redo $STAGE: $RERUN"
! jobs_run "$LAST_LOG" | grep -q "^ingest " || fail "the rerun redid finished ingest jobs: $RERUN"

# --- the same outputs ---------------------------------------------------------------------------
"$BIN/python" "$REPO/tests/slurm/compare.py" "$WORK/local-run" "$WORK/slurm-run" \
    || fail "SLURM outputs differ from the local run's"
"$BIN/python" "$REPO/tests/slurm/compare.py" "$WORK/local-run" "$WORK/killed-run" \
    || fail "outputs after kill -9 and rerun differ from the uninterrupted run's"
for dir in slurm-run killed-run; do
    for s in s1 s2; do
        [ -s "$WORK/$dir/results/$s/report.html" ] || fail "$dir: no report of $s"
    done
    [ -s "$WORK/$dir/results/summary/report.html" ] || fail "$dir: no summary report"
done
say "the SLURM run (resumed after scancel) and the local run (resumed after kill -9) equal the" \
    "uninterrupted local run"
say "wall time $SECONDS s"
if [ ${#PROBLEMS[@]} -gt 0 ]; then
    printf 'slurm-test: %s\n' "${PROBLEMS[@]}" >&2
    fail "${#PROBLEMS[@]} problem(s) above"
fi
echo "slurm-test: 2 passed, 0 failed"
