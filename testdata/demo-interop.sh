# Sourced at the end of testdata/demo.sh (uses its $L, $OUT and say).
# One archive that docker, podman, containerd and skopeo all load.
say oci-tools export "$L:app" "$OUT/app.tar"
say tar -tvf "$OUT/app.tar"
if command -v skopeo >/dev/null 2>&1; then
    say skopeo inspect "oci-archive:$OUT/app.tar"
fi
