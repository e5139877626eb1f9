# syntax=docker/dockerfile:1
# The cdp-connector image: a slim Python base, the package in a virtualenv, a non-root
# user, nothing written outside /tmp (runs with a read-only root filesystem).
#   docker build -t cdp-connector:0.1.0 .
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/cdp-connector
COPY pyproject.toml README.md ./
COPY connector ./connector
# confluent-kafka ships manylinux wheels with librdkafka inside: no compiler needed.
RUN /opt/cdp-connector/bin/pip install --no-cache-dir . \
    && /opt/cdp-connector/bin/python -m compileall -q /opt/cdp-connector

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="cdp-connector" \
      org.opencontainers.image.description="Kafka clickstream (Avro) to Sitecore CDP Stream API connector" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 connector \
    && useradd --system --uid 10001 --gid connector --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin connector
COPY --from=build /opt/cdp-connector /opt/cdp-connector
# Bytecode is compiled at build time; nothing is written at run time except under /tmp.
ENV PATH=/opt/cdp-connector/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 10001:10001
# /healthz, /readyz and /metrics (observability.port).
EXPOSE 9400
# The connector drains in-flight events and commits offsets on SIGTERM.
STOPSIGNAL SIGTERM
ENTRYPOINT ["cdp-connector"]
CMD ["run", "--config", "/etc/cdp-connector/connector.yaml"]
