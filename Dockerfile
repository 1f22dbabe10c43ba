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

EXPOSE 8000
ENV GATEWAY_DB=/app/var/gateway.db
RUN mkdir -p /app/var && chown gateway /app/var
USER gateway
ENTRYPOINT ["python", "-m", "gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
