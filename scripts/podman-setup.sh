#!/usr/bin/env bash
# Prepare podman on a machine with no Docker engine and no registry access, so that `make test-image` can build and
# run the image (see /work/shared/notes/containers.md for why each step is needed). Idempotent: each step is
# skipped when its result is already there. Run as root.
#
#   1. podman, runc and debootstrap from Debian (apt-get).
#   2. a containers.conf that selects runc (crun fails here: setrlimit on hybrid cgroups) and sets ulimits;
#      podman reads it through CONTAINERS_CONF.
#   3. a stand-in base image: a Debian bookworm minbase rootfs with python3 (debootstrap, from the mirror apt already
#      uses), imported as docker.io/library/python:3.11-slim; build with --pull=never so it is never pulled.
#
# Prints the two lines to run the check with. Environment:
#   PODMAN_SETUP_DIR  where the conf file and the rootfs go (default /var/tmp/rnnmt-podman)
#   BASE_IMAGE        tag of the stand-in base (default docker.io/library/python:3.11-slim)
set -euo pipefail
DIR=${PODMAN_SETUP_DIR:-/var/tmp/rnnmt-podman}
BASE_IMAGE=${BASE_IMAGE:-docker.io/library/python:3.11-slim}
CONF=$DIR/containers.conf
mkdir -p "$DIR"

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  echo "podman-setup: installing podman, runc, debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap >/dev/null
fi

want_conf='[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"'
if [ "$(cat "$CONF" 2>/dev/null)" != "$want_conf" ]; then
  printf '%s\n' "$want_conf" > "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
  echo "podman-setup: wrote $CONF"
fi
export CONTAINERS_CONF=$CONF

if ! podman image exists "$BASE_IMAGE"; then
  mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | awk '/^(URIs:|deb) / && match($0, /https?:\/\/[^ ]+/) {print substr($0, RSTART, RLENGTH); exit}' || true)
  [ -n "$mirror" ] || { echo "podman-setup: no Debian mirror found in apt's sources" >&2; exit 1; }
  echo "podman-setup: debootstrap bookworm from $mirror, imported as $BASE_IMAGE (a few minutes)"
  rm -rf "$DIR/rootfs"
  nice -n 10 debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$DIR/rootfs" "$mirror" >/dev/null
  tar -C "$DIR/rootfs" -c . | nice -n 10 podman import -q - "$BASE_IMAGE" >/dev/null
  rm -rf "$DIR/rootfs"
fi

cat <<EOF
podman-setup: ready. Then:
  export CONTAINERS_CONF=$CONF
  make test-image TEST_IMAGE_BUILD_OPTS="--pull=never -v /opt/wheels:/opt/wheels:ro --build-arg PIP_FIND_LINKS=/opt/wheels -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"
EOF
