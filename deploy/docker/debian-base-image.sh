#!/usr/bin/env bash
# Makes a local Debian image from the Debian archive, for machines that reach no container
# registry: `debian-base-image.sh python` gives a base for the Dockerfile's PYTHON_IMAGE,
# `debian-base-image.sh redis` an image with redis-server for compose's REDIS_IMAGE.
# An image already tagged is kept, so only the first run pays for debootstrap.
#   DEBIAN_MIRROR  the archive (default: the mirror apt uses here, else deb.debian.org)
#   DEBIAN_SUITE   default bookworm
set -euo pipefail

kind=${1:?usage: debian-base-image.sh python|redis}
suite=${DEBIAN_SUITE:-bookworm}
python_tag="replay-attach-base/python:$suite"
redis_tag="replay-attach-base/redis:$suite"

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # The first plain Debian archive apt is configured with (one-line or deb822 sources).
  mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null \
    | head -n1 | tr -d ' ' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi

has_image() { docker image inspect "$1" >/dev/null 2>&1; }

make_python_base() {
  if has_image "$python_tag"; then echo "$python_tag"; return; fi
  command -v debootstrap >/dev/null || {
    echo "debootstrap is needed to make $python_tag (apt-get install debootstrap)" >&2; exit 1; }
  # Not local: the EXIT trap runs after this function has returned, where a local is unset.
  root=$(mktemp -d /var/tmp/replay-attach-debootstrap.XXXXXX)
  # EXIT, not RETURN: set -e leaves through exit when debootstrap or docker import fails.
  trap 'rm -rf "${root:-}"' EXIT
  echo "making $python_tag from $mirror ($suite) with debootstrap" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$root" "$mirror" >&2
  # An image has no use for the package cache, nor for the archive lists it would go stale with.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  echo "deb $mirror $suite main" > "$root/etc/apt/sources.list"
  tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$python_tag" >&2
  echo "$python_tag"
}

make_redis() {
  if has_image "$redis_tag"; then echo "$redis_tag"; return; fi
  local base
  base=$(make_python_base)
  echo "making $redis_tag from $base with Debian's redis-server" >&2
  # A Dockerfile on stdin: the classic builder and BuildKit both take it.
  printf '%s\n' \
    "FROM $base" \
    'RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data' \
    'WORKDIR /data' \
    'USER redis' \
    'EXPOSE 6379' \
    'CMD ["redis-server", "--protected-mode", "no"]' \
    | docker build -q -t "$redis_tag" - >&2
  echo "$redis_tag"
}

case "$kind" in
  python) make_python_base ;;
  redis) make_redis ;;
  *) echo "usage: debian-base-image.sh python|redis" >&2; exit 2 ;;
esac
