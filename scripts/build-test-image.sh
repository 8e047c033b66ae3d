#!/usr/bin/env bash
# Build the image the tests run, `heroctl-test/busybox:latest`, locally and
# offline: FROM scratch plus Debian's static busybox (package busybox-static)
# and one symlink per applet, so `sh`, `httpd`, `sleep`... all resolve.
# No registry is reachable in CI, so nothing may be pulled. Rebuilt when its
# content changed, not merely when the tag is missing: the image carries the
# sha256 of this script and of the busybox binary (label
# org.heroctl.test-image.content); the same content does nothing (pass
# --force to rebuild anyway).
set -euo pipefail

IMAGE="${HEROCTL_TEST_IMAGE:-heroctl-test/busybox:latest}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"

if [ ! -x "$BUSYBOX" ]; then
  echo "no static busybox at $BUSYBOX (apt-get install busybox-static)" >&2
  exit 1
fi
if ! "$BUSYBOX" --list >/dev/null 2>&1; then
  echo "$BUSYBOX does not run" >&2
  exit 1
fi

content="$(cat "${BASH_SOURCE[0]}" "$BUSYBOX" | sha256sum | cut -d' ' -f1)"
built="$(docker image inspect "$IMAGE" \
  --format '{{ index .Config.Labels "org.heroctl.test-image.content" }}' 2>/dev/null || true)"
if [ "${1:-}" != "--force" ] && [ "$built" = "$content" ]; then
  exit 0
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/var/www" "$root/root"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
echo "heroctl test image" >"$root/var/www/index.html"
chmod 1777 "$root/tmp"

cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
LABEL org.heroctl.test-image="busybox"
LABEL org.heroctl.test-image.content="CONTENT"
WORKDIR /
CMD ["/bin/sh"]
EOF

sed -i "s/CONTENT/$content/" "$ctx/Dockerfile"

# The classic builder works offline with no buildx plugin installed.
if ! out="$(DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" 2>&1)"; then
  echo "$out" >&2
  exit 1
fi
docker image inspect "$IMAGE" --format "built {{.RepoTags}} {{.Id}}"
