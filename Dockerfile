# Clarion on an empty base image. The binary is statically linked (packaging/static.sh), so the
# image holds nothing else: no shell, no libc, no CA bundle (webhook targets over https are
# verified against the roots compiled into the binary).
#   docker build -t clarion .
#   docker run -p 6001:6001 -p 9601:9601 -e CLARION_APP_ID=… -e CLARION_APP_KEY=… -e CLARION_APP_SECRET=… clarion
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN packaging/static.sh

FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/clarion /clarion
# The process runs as an unprivileged user id; nothing in the image is writable or needed.
USER 65534:65534
EXPOSE 6001 9601
# /ready: 503 while draining or while Redis (cluster) or the app store (first read) is away.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/clarion", "probe", "http://127.0.0.1:6001/ready"]
ENTRYPOINT ["/clarion"]
