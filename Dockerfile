# Seawall: a small, non-root image. Build: docker build -t seawall .
# Run:   docker run -p 5000:5000 -v seawall-data:/var/lib/seawall -e SEAWALL_ADMIN_PASSWORD=... seawall

# --- build: install the project and its dependencies into a venv --------------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/seawall

WORKDIR /src
# .dockerignore admits only what the package needs
COPY . .
RUN /opt/seawall/bin/pip install --no-cache-dir ".[postgres]"

# --- runtime: the venv and nothing else ---------------------------------------------------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="seawall" \
      org.opencontainers.image.description="Registry replication engine with a built-in OCI registry" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 seawall \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/seawall --no-create-home \
        --shell /usr/sbin/nologin seawall \
    && mkdir -p /var/lib/seawall \
    && chown 10001:10001 /var/lib/seawall

COPY --from=build /opt/seawall /opt/seawall

ENV PATH=/opt/seawall/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SEAWALL_HOST=0.0.0.0 \
    SEAWALL_DATA_DIR=/var/lib/seawall

VOLUME ["/var/lib/seawall"]
USER 10001
WORKDIR /var/lib/seawall
EXPOSE 5000

# /healthz is unauthenticated and answers 200 {"status":"ok"} while the server is up
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('SEAWALL_PORT', '5000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

CMD ["seawall", "serve"]
