# The check gateway's image: `python -m gateway serve` (granian) on port 8000, the SQLite
# store in the volume /var/lib/gateway. docs/configuration.md ("Docker and compose") has
# the variables; deploy/compose.yaml runs two nodes with Redis, PostgreSQL, Prometheus and
# Grafana.
#
#   docker build -t check-gateway .
#   docker run -d -p 127.0.0.1:8000:8000 -v gateway-data:/var/lib/gateway check-gateway
#   docker exec <container> python -m gateway keys create --caller ... --scopes check,feedback

ARG PYTHON_IMAGE=python:3.11-slim

# -- builder: the wheel, and a virtualenv holding it and its dependencies -----------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src

# The virtualenv has no pip of its own (pip --python installs into it): the runtime stage
# copies it whole and nothing in it can install anything. Every dependency has binary
# wheels for linux amd64 and arm64, so no compiler is needed here either.
# First the dependencies alone, read from pyproject.toml: this layer is rebuilt only when
# that file changes, not at every change of the code.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --requirement /tmp/requirements.txt

# Then the gateway itself, as a wheel (package data included: catalog, mappings, console).
COPY README.md ./
COPY gateway ./gateway
COPY measures_catalog ./measures_catalog
COPY adapters ./adapters
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m pip --python /opt/venv/bin/python install --no-deps /wheels/*.whl \
 && python -m pip --python /opt/venv/bin/python check

# -- runtime: the interpreter, the virtualenv, nothing else --------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="check-gateway" \
      org.opencontainers.image.description="逢办必查 check gateway: which credit measures apply to an organisation for a matter, with their legal basis, recorded for the 发起—响应—反馈 loop" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

# A fixed uid and gid, so the volume's owner is the same in every container and on the
# host (chown -R 10001:10001 a directory bind-mounted in its place).
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/gateway --no-create-home \
        --shell /usr/sbin/nologin gateway \
 && mkdir -p /var/lib/gateway \
 && chown 10001:10001 /var/lib/gateway

COPY --from=builder /opt/venv /opt/venv

# GATEWAY_DB: the store, its saved snapshot (<db>.snapshot) and the workers' metric files
# (<db dir>/metrics/<port>) are all in the volume. GATEWAY_WORKERS: granian worker
# processes (each holds its own snapshot: about 90 MiB at 100,000 entries, 1.3 GiB at
# 10,000,000).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_DB=/var/lib/gateway/gateway.db \
    GATEWAY_WORKERS=2

# Relative paths (pull's var/cursors) land in the volume too.
WORKDIR /var/lib/gateway
VOLUME ["/var/lib/gateway"]
USER 10001:10001
EXPOSE 8000

# granian's main process stops its workers on SIGTERM; each stops its app, which flushes
# the recorder ("gateway stopped: recorder flushed"). SIGHUP reloads the catalog.
STOPSIGNAL SIGTERM

# /readyz: 200 once the catalog and the snapshot are loaded, the recorder's last commit
# succeeded and the change log is readable; 503 with reasons otherwise (urlopen raises,
# python exits 1). No curl in slim: python's urllib. The start period covers a first
# snapshot build from a large store (67 s at 10,000,000 entries; 2 s from the saved file).
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]

# `serve` takes its worker count from GATEWAY_WORKERS; the exec form makes python
# (granian's main process) PID 1, which receives SIGTERM itself and flushes the recorder.
# Any other command: docker run ... check-gateway python -m gateway keys list
CMD ["python", "-m", "gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
