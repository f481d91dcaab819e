#!/usr/bin/env bash
# `make test-image`: build the image and check it the way it runs in production (podman; not in CI: it needs
# podman, a few GB of disk and minutes). Checks, each one line PASS/FAIL:
#   healthy within the HEALTHCHECK start period; runs as a non-root user; read-only root filesystem (a write
#   fails, with a tmpfs only at /tmp); a translation en->de; `podman stop` (SIGTERM) while a long request is in
#   flight: that request completes with 200 and the process exits 0 within the grace period.
# Prints build time, image size, start-up time (run to /ready) and the server's RSS after start-up and after load.
#
# On a machine without a Docker engine or registry access, run scripts/podman-setup.sh once (idempotent): it installs
# podman with runc, writes a containers.conf for it and imports a stand-in python:3.11-slim base, then prints the
# CONTAINERS_CONF export and the `make test-image` line with the BUILD_OPTS below.
#
# Environment:
#   IMAGE        tag to build (default localhost/rnnmt:test)
#   BUILD_OPTS   extra `podman build` options, e.g. on a machine without registry access (a stand-in base image
#                imported as python:3.11-slim, the CPU torch wheel in /opt/wheels, a TLS-intercepting proxy):
#                BUILD_OPTS="--pull=never -v /opt/wheels:/opt/wheels:ro --build-arg PIP_FIND_LINKS=/opt/wheels
#                -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"
#                (the CA bundle and the wheelhouse are mounted for the build only: neither ends up in the image)
#   CONTAINERS_CONF  podman's own: the conf file podman-setup.sh wrote (runc, ulimits), where crun fails
#   PORT         host port on 127.0.0.1 (default 18080)
#   GRACE_S      RNNMT_SHUTDOWN_GRACE_S inside the container (default 20)
# Needs an en->de model in released-models/ (the image serves what that folder holds).
set -uo pipefail
CTX=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-localhost/rnnmt:test}
PORT=${PORT:-18080}
GRACE_S=${GRACE_S:-20}
NAME=rnnmt-test-image-$$
URL=http://127.0.0.1:$PORT
PY=${PYTHON:-python3}
passed=0 failed=0
check() {  # check NAME COMMAND...: one line PASS/FAIL
  local what=$1; shift
  if "$@"; then echo "PASS  $what"; passed=$((passed + 1)); else echo "FAIL  $what"; failed=$((failed + 1)); fi
}
now() { date +%s.%N; }
# Without systemd (containers, CI machines) podman cannot schedule the healthcheck's timer and says so on every run,
# stop and rm; the check below runs the HEALTHCHECK command itself, so those lines are only noise.
no_timer_noise() { "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }
since() { "$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

command -v podman >/dev/null || { echo "test-image: podman is not installed (apt-get install podman runc)"; exit 2; }
ls "$CTX"/released-models/*/config.json >/dev/null 2>&1 || { echo "test-image: no model in released-models/"; exit 2; }

t0=$(now)
build_log=$(mktemp)
# shellcheck disable=SC2086  # BUILD_OPTS is a list of options
if ! podman build --format docker $BUILD_OPTS -t "$IMAGE" "$CTX" >"$build_log" 2>&1; then
  tail -n 30 "$build_log"; echo "test-image: build failed (log above, in full: $build_log)"; exit 1
fi
rm -f "$build_log"
build_s=$(since "$t0")
size_mb=$(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f", $1 / 1e6}')
start_period=$(podman image inspect --format '{{.Config.Healthcheck.StartPeriod}}' "$IMAGE" 2>/dev/null \
  | "$PY" -c "import sys; v = sys.stdin.read().strip(); print(int(v) // 10**9 if v.isdigit() else 60)")

trap 'podman rm -f -t 1 "$NAME" >/dev/null 2>&1 || true' EXIT
t0=$(now) started=$SECONDS
no_timer_noise podman run -d --name "$NAME" --read-only --tmpfs /tmp:rw,size=64m -p "127.0.0.1:$PORT:8000" \
  -e RNNMT_KEYS_DB=/tmp/keys.sqlite -e RNNMT_SHUTDOWN_GRACE_S="$GRACE_S" -e RNNMT_THREADS=2 "$IMAGE" >/dev/null \
  || { echo "test-image: podman run failed"; exit 1; }
ready() { curl -fsS -o /dev/null "$URL/ready" 2>/dev/null; }
for _ in $(seq 1 $((start_period * 5))); do ready && break; sleep 0.2; done
startup_s=$(since "$t0")
ready || { echo "test-image: not ready; the container's last lines:"; podman logs --tail 25 "$NAME" 2>&1; }
healthy() {  # the image's own HEALTHCHECK command passes before its start period (counted from `run`) is over
  while [ $((SECONDS - started)) -le "$start_period" ]; do
    podman healthcheck run "$NAME" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}
check "healthy within the start period (${start_period}s)" healthy
check "ready (/ready 200) after ${startup_s}s" ready
uid=$(podman exec "$NAME" id -u 2>/dev/null || podman exec "$NAME" python -c "import os; print(os.getuid())")
check "runs as a non-root user (uid $uid)" test "${uid:-0}" != 0
# The write must fail with EROFS (read-only file system): a failed exec or a permission error would not show it.
check "root filesystem is read-only (a write to /app fails with EROFS)" podman exec "$NAME" python -c "
import errno, sys
try:
    open('/app/probe', 'w')
except OSError as e:
    sys.exit(e.errno != errno.EROFS)
sys.exit(1)"
check "/tmp is writable (tmpfs)" podman exec "$NAME" python -c "open('/tmp/probe', 'w')"
translate() {
  curl -fsS -X POST -H 'content-type: application/json' \
    -d '{"text": "A man rides a bicycle.", "source": "en", "target": "de"}' "$URL/translate" | grep -q '"translations"'
}
check "POST /translate en->de" translate
rss() { podman exec "$NAME" sh -c "grep VmRSS /proc/1/status" 2>/dev/null | awk '{printf "%.0f MB", $2 / 1024}'; }
rss_start=$(rss)

# SIGTERM with a long request in flight: 64 texts of 12 different sentences (768, beam 5), one request: seconds of
# decoding, so it is still being decoded when the stop comes (the sentence cache cannot shorten it: no two are alike).
body=$(mktemp)
"$PY" - > "$body" <<'PY'
import itertools, json, random
subjects = ["A man", "A woman", "The child", "An old farmer", "The young doctor", "A tall teacher", "My brother",
            "Her sister", "The waiter", "A tourist", "The police officer", "Our neighbour"]
verbs = ["rides", "carries", "paints", "repairs", "sells", "buys", "watches", "finds", "cleans", "opens"]
objects = ["a red bicycle", "an old boat", "the wooden door", "a small dog", "the blue car", "a heavy box",
           "the broken window", "a new guitar", "the green umbrella", "a basket of apples"]
places = ["in the park", "near the river", "on the busy street", "at the market", "behind the house",
          "in the morning", "after work", "next to the station", "in the rain", "on Sunday"]
combos = list(itertools.product(subjects, verbs, objects, places))
random.Random(0).shuffle(combos)
sentences = iter(f"{s} {v} {o} {p}." for s, v, o, p in combos)
texts = [" ".join(itertools.islice(sentences, 12)) for _ in range(64)]
print(json.dumps({"text": texts, "source": "en", "target": "de", "beam_size": 5}))
PY
out=$(mktemp)
curl -sS -o "$out" -w '%{http_code}' -X POST -H 'content-type: application/json' -d @"$body" "$URL/translate" \
  > "$out.status" 2>/dev/null &
curl_pid=$!
queued() {  # sentences waiting for the decoder, over all models (the long request has reached it)
  curl -fsS "$URL/metrics" 2>/dev/null | awk '/^rnnmt_queue_depth/ {n += $2} END {exit !(n > 0)}'
}
for _ in $(seq 1 100); do queued && break; sleep 0.1; done
rss_load=$(rss)
running=$(podman inspect --format '{{.State.Running}}' "$NAME")
in_flight=no; kill -0 "$curl_pid" 2>/dev/null && queued && in_flight=yes
t0=$(now)
no_timer_noise podman stop -t $((GRACE_S + 10)) "$NAME" >/dev/null
stop_s=$(since "$t0")
wait "$curl_pid"
status=$(cat "$out.status")
translations=$("$PY" -c "import json, sys; print(len(json.load(open(sys.argv[1]))['translations']))" "$out" 2>/dev/null)
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
got="in flight at SIGTERM: $in_flight; HTTP $status, ${translations:-0}/64 texts"
check "in-flight request completed during the stop ($got)" \
  test "$in_flight" = yes -a "$status" = 200 -a "${translations:-0}" = 64
check "exit code 0 after SIGTERM (got $exit_code)" test "$exit_code" = 0
stopped_in_grace() {  # it was running when stopped (a container that had died stops in no time) and stopped in time
  [ "$running" = true ] && "$PY" -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$stop_s" "$GRACE_S"
}
check "stopped within the grace period (${stop_s}s <= ${GRACE_S}s; running when stopped: $running)" stopped_in_grace
rm -f "$out" "$out.status" "$body"

echo "build ${build_s}s, image ${size_mb} MB, start-up ${startup_s}s, RSS ${rss_start:-?} after start-up," \
     "${rss_load:-?} under one long request"
echo "test-image: $passed passed, $failed failed"
[ "$failed" = 0 ]
