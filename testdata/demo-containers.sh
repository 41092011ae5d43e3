# Sourced by demo.sh: the seed's container half (root, runc and overlayfs).
# An "expressweb" image (busybox httpd stands in for `npm start`), an image
# that extends it, a container of the second with its own writable layer on
# the shared read-only layers, `ps -s`, a page fetched from it, a file
# written inside, stop, commit, rm — and where the layers live on disk.
if [ "$(id -u)" != 0 ] || ! command -v runc >/dev/null || [ ! -x /bin/busybox ]; then
    printf '\n(containers part skipped: needs root, runc and busybox-static)\n'
else
    export OCI_TOOLS_STATE="$OUT/state"
    PORT=${DEMO_PORT:-18080}
    W="$OUT/expressweb"
    mkdir -p "$W/app" "$W/ext"
    printf '<h1>expressweb</h1>\n' >"$W/app/index.html"
    cat >"$W/app/Dockerfile" <<DOCKERFILE
FROM base
WORKDIR /usr/src/app
COPY index.html ./
CMD ["busybox", "httpd", "-f", "-p", "$PORT", "-h", "/usr/src/app"]
DOCKERFILE
    cat >"$W/ext/Dockerfile" <<DOCKERFILE
FROM expressweb
CMD ["busybox", "httpd", "-f", "-v", "-p", "$PORT", "-h", "/usr/src/app"]
DOCKERFILE
    say oci-tools build -t "$L:expressweb" "$W/app"
    say oci-tools build -t "$L:extending-expressweb" "$W/ext"
    say oci-tools history "$L:expressweb"
    say oci-tools history "$L:extending-expressweb"
    say oci-tools images "$L"
    say oci-tools run -d --name extending-expressweb-container --network host "$L:extending-expressweb"
    say oci-tools ps -s
    for _ in $(seq 50); do
        busybox wget -qO- "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
        sleep 0.1
    done
    say busybox wget -qO- "http://127.0.0.1:$PORT/"
    say oci-tools exec extending-expressweb-container sh -c 'echo hello from inside > /usr/src/app/hello.txt'
    say oci-tools ps -s
    say oci-tools diff extending-expressweb-container
    say oci-tools df -v "$L"
    say oci-tools stop -t 1 extending-expressweb-container
    say oci-tools ps -a
    say oci-tools commit extending-expressweb-container "$L:expressweb-v2" -m "hello.txt"
    say oci-tools history "$L:expressweb-v2"
    say oci-tools rm extending-expressweb-container
    # Where are the layers found on the host?  One directory per chain id.
    say ls "$L/.oci-tools/layers"
fi
