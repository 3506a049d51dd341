# syntax=docker/dockerfile:1
# The medgate image: one static-ish binary (glibc) that runs every process of the platform
# (`medgate serve`, `control-plane`, `proxy`, `migrate`, `token issue`, ...).
#
#   docker build -t medgate:0.1.0 .
#   docker run --rm -p 8080:8080 -p 8081:8081 medgate:0.1.0 serve --demo
#
# The Helm chart (charts/medgate) runs it with a read-only root filesystem as uid 10001.

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

# ---- build -----------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
# cmake for libz-ng-sys (zlib-ng, used by Pingora); gcc, make and binutils come with the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target directory between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin medgate \
    && cp target/release/medgate /usr/local/bin/medgate \
    && strip /usr/local/bin/medgate

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 medgate \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/medgate --no-create-home \
        --shell /usr/sbin/nologin medgate \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/medgate
COPY --from=build /usr/local/bin/medgate /usr/local/bin/medgate

# Listen on every interface inside the container; state in the data volume.
ENV MEDGATE_DATA_DIR=/var/lib/medgate \
    MEDGATE_API_LISTEN=0.0.0.0:8081 \
    MEDGATE_PROXY_LISTEN=0.0.0.0:8080
USER 10001:10001
WORKDIR /var/lib/medgate
VOLUME ["/var/lib/medgate"]
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/medgate"]
CMD ["serve"]
