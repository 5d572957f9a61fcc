# Tessera: one binary, built from this repository.
#
#   docker build -t tessera .
#   docker build -t tessera-product --build-arg FEATURES=product .   # choose the modules
#   docker run -p 8080:8080 -e TESSERA__AUTH__JWT_SECRET=... tessera
#
# Production refuses the development JWT secret: set TESSERA__AUTH__JWT_SECRET.
# Without TESSERA__DATABASE__URL the server uses SQLite in /app/data (mount a volume there);
# for Postgres set TESSERA__DATABASE__URL=postgres://user:pass@host:5432/db.

# ---- build ----
FROM rust:1-bookworm AS builder
# libpq is built from source and linked in (pq-sys "bundled"); it needs OpenSSL's headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Empty: the default features. Otherwise a list such as "product", built with
# --no-default-features so only the named modules are compiled in.
ARG FEATURES=
RUN if [ -n "$FEATURES" ]; then \
        cargo build --release --locked --bin tessera --no-default-features --features "$FEATURES"; \
    else \
        cargo build --release --locked --bin tessera; \
    fi

# ---- run ----
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin tessera \
    && mkdir -p /app \
    && chown tessera:tessera /app
COPY --from=builder /src/target/release/tessera /usr/local/bin/tessera
# config/default.toml is compiled into the binary; the environment layer
# (config/production.toml) is read from ./config at run time.
COPY --chown=tessera:tessera config/ /app/config/
# The working directory matters: SQLite's default URL is ./data/tessera.db.
WORKDIR /app
USER tessera
ENV TESSERA_ENV=production \
    TESSERA__SERVER__HOST=0.0.0.0
EXPOSE 8080
# No HEALTHCHECK: the image has no curl. Orchestrators should probe
# GET /health/live (liveness) and GET /health/ready (readiness, checks the database) on 8080.
ENTRYPOINT ["tessera"]
CMD ["serve"]
