# cti-hub: TAXII 2.1 sharing hub. Build: docker build -t cti-hub .
# Run with docker compose (see README.md, "Running with docker compose").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The extras the image carries: misp (feeds import misp, through misp-stix and the STIX 1 libraries,
# about 50 MB). Build without it with --build-arg EXTRAS= ; the other commands work the same.
ARG EXTRAS=misp

# The dependencies at the versions uv.lock pins, checked against its hashes (psycopg, orjson and argon2
# install from wheels), then the package itself without resolving anything again. uv (the version the
# lock pins) only exports the lock to pip's format and is removed again.
COPY pyproject.toml uv.lock README.md ./
COPY hub ./hub
COPY feeds ./feeds
RUN pip install "uv==$(sed -n '/^name = "uv"$/{n;s/^version = "\(.*\)"$/\1/p;}' uv.lock)" \
    && uv export --locked --quiet --no-emit-project $(for extra in $EXTRAS; do printf -- '--extra %s ' "$extra"; done) \
        --output-file requirements.txt \
    && pip uninstall -y uv \
    && pip install --require-hashes --no-deps -r requirements.txt \
    && pip install --no-deps . \
    && rm -rf build ./*.egg-info requirements.txt

# Default sharing configuration; docker-compose.yml mounts ./config over it read-only.
COPY config ./config

# Run as an unprivileged user; /data is the data directory (CTI_HUB_DATA_DIR): the SQLite
# database and the generated secret.key live there when no database URL or secret is set.
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin hub \
    && mkdir -p /data \
    && chown hub:hub /data
USER hub
ENV CTI_HUB_DATA_DIR=/data
VOLUME ["/data"]

EXPOSE 8000
# /readyz answers 200 once the database schema is current, 503 otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]

# Applies pending migrations, then serves TAXII 2.1 with gunicorn.
CMD ["cti-hub", "serve", "--host", "0.0.0.0", "--port", "8000"]
