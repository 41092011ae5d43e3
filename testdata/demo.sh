#!/usr/bin/env bash
# `make demo`: Docker's layering lab, on plain OCI layouts with oci-tools only.
# Builds a base image step by step (one layer per file-changing step, an
# empty_layer history row per metadata step), extends it as a second image,
# then shows history, images, df, a container's writable layer and a commit.
set -euo pipefail
OUT=${DEMO_OUT:-demo-out}
rm -rf "$OUT"
mkdir -p "$OUT"
L="$OUT/layout"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# --- the base image: FROM scratch; ADD rootfs; ENV; RUN mkdir; WORKDIR ------
printf 'Building base and app step by step (each step moves the ref to its new image\n'
printf 'and says so on stderr, as docker does: Untagged: REF@old / Tagged: REF@new)\n'
oci-tools new "$L:scratch" >/dev/null
oci-tools unpack "$L:scratch" "$OUT/step" >/dev/null
R="$OUT/step/rootfs"
mkdir -p "$R/bin" "$R/etc" "$R/tmp"
chmod 1777 "$R/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\n' >"$R/etc/group"
printf 'NAME="demo linux"\nVERSION_ID=1\n' >"$R/etc/os-release"
if [ -x /bin/busybox ]; then cp /bin/busybox "$R/bin/busybox"; ln -s busybox "$R/bin/sh"; fi
oci-tools commit "$OUT/step" "$L:base" --refresh \
    --created-by '/bin/sh -c #(nop) ADD file:rootfs.tar in / ' >/dev/null
oci-tools config "$L:base" --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin >/dev/null
# A commit builds on the bundle's base image: re-unpack so the next step
# starts from the image with the ENV row (as each docker build step does).
oci-tools unpack --force "$L:base" "$OUT/step" >/dev/null
mkdir -p "$R/usr/src/app"
oci-tools commit "$OUT/step" "$L:base" --refresh --created-by '/bin/sh -c mkdir -p /usr/src/app' >/dev/null
oci-tools config "$L:base" --workdir /usr/src/app --cmd '["sh"]' >/dev/null

# --- a second image extends the first: COPY app; EXPOSE; CMD -------------------
oci-tools unpack "$L:base" "$OUT/build" >/dev/null
A="$OUT/build/rootfs/usr/src/app"
printf '{"name":"demo-app","version":"1.0.0"}\n' >"$A/package.json"
head -c 300000 /dev/urandom | base64 >"$A/server.js"
oci-tools commit "$OUT/build" "$L:app" \
    --created-by '/bin/sh -c #(nop) COPY dir:app in /usr/src/app ' >/dev/null
oci-tools config "$L:app" --expose 8080 >/dev/null
oci-tools config "$L:app" --cmd '["sh","-c","cat package.json"]' >/dev/null

say oci-tools history "$L:base"
say oci-tools history "$L:app"
say oci-tools images "$L"
say oci-tools df -v "$L"

# --- a container: unpack, write, see the writable layer, commit it -------------
say oci-tools unpack "$L:app" "$OUT/container"
head -c 12345 /dev/zero >"$OUT/container/rootfs/usr/src/app/data.bin"
rm "$OUT/container/rootfs/etc/os-release"
say oci-tools status "$OUT/container"
say oci-tools diff "$OUT/container"
say oci-tools commit "$OUT/container" "$L:app-v2" -m "wrote data.bin"
say oci-tools history "$L:app-v2"
# --- dig into the layers: what each adds, changes, removes and wastes ----------
say oci-tools layers "$L:app-v2"
say oci-tools layer show "$L:app-v2" -1
say oci-tools efficiency "$L:app-v2"
say oci-tools validate "$L"
if [ -f "$(dirname "$0")/demo-build.sh" ]; then
    # shellcheck source=/dev/null
    . "$(dirname "$0")/demo-build.sh"
fi
if [ -f "$(dirname "$0")/demo-containers.sh" ]; then
    # shellcheck source=/dev/null
    . "$(dirname "$0")/demo-containers.sh"
fi
if [ -f "$(dirname "$0")/demo-interop.sh" ]; then
    # shellcheck source=/dev/null
    . "$(dirname "$0")/demo-interop.sh"
fi
printf '\nDone: the layout is in %s\n' "$L"
