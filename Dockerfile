# syntax=docker/dockerfile:1
# Build: the release binary. Run: a small image with a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
RUN cargo build --release --locked

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /nonexistent --shell /usr/sbin/nologin identity
WORKDIR /app
COPY --from=build /src/target/release/identity-service /usr/local/bin/identity-service
COPY config ./config
COPY templates ./templates
USER identity
EXPOSE 8080
ENV IDENTITY__SERVER__BIND=0.0.0.0:8080
ENTRYPOINT ["identity-service"]
CMD ["--config", "config/default.toml", "serve"]
