# Sourced at the end of testdata/demo.sh (uses its `say`, $L and $OUT): build
# the node.js-shaped example in testdata/build on top of $L:base, edit one
# source file and build again (the steps before `COPY app/ .` come from the
# cache), then show the result's history.
BUILD_CTX="$OUT/build-context"
rm -rf "$BUILD_CTX"
cp -r "$(dirname "$0")/build" "$BUILD_CTX"
if [ "$(id -u)" -eq 0 ] && [ -x /bin/busybox ]; then
    say oci-tools build -t "$L:node-app" --build-arg "BASE=$L:base" "$BUILD_CTX"
    printf '// edited\n' >>"$BUILD_CTX/app/server.js"
    printf '\n(app/server.js was edited: COPY hashes the files it copies, so `COPY app/ .`\n'
    printf ' misses the cache and it and every later step run again; the steps before it\n'
    printf ' are unchanged and come from the cache: "Using cache")\n'
    say oci-tools build -t "$L:node-app" --build-arg "BASE=$L:base" "$BUILD_CTX"
    say oci-tools history "$L:node-app"
else
    printf '\n(build demo skipped: its RUN steps need root and busybox)\n'
fi
