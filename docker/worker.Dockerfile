# An evaluation worker: a Celery worker over Redis that rebuilds candidates from recipes and
# scores them (the `mergenet.workers.celery_app` application).
# Build from the repository root: docker build -f docker/worker.Dockerfile .
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MERGENET_DATA_DIR=/data MERGENET_CACHE_DIR=/cache OMP_NUM_THREADS=1
WORKDIR /app
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
VOLUME ["/cache"]
# One task at a time per container (each single-threaded); scale with `--scale worker=N`.
CMD ["celery", "--app", "mergenet.workers.celery_app", "worker", "--loglevel", "INFO", \
     "--concurrency", "1", "--prefetch-multiplier", "1"]
