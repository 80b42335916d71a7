# servicegraph: one image for the API (`serve`), the Celery worker (`worker`) and beat
# (`beat`); docker-compose.yml runs all three next to Neo4j and Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY servicegraph ./servicegraph
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin servicegraph \
    && mkdir -p /data /metrics \
    && chown servicegraph /data /metrics

# Named volumes mounted on /data and /metrics start with this ownership.
USER servicegraph
ENV SERVICEGRAPH_DATA_DIR=/data
EXPOSE 8000

ENTRYPOINT ["servicegraph"]
CMD ["serve", "--host", "0.0.0.0"]
