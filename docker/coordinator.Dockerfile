# The coordinator: API + evolutionary loop (`mergenet coordinator up`).
# Build from the repository root: docker build -f docker/coordinator.Dockerfile .
FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MERGENET_DATA_DIR=/data MERGENET_CACHE_DIR=/cache
WORKDIR /app
# torch first and pinned to the CPU wheel (unpinned, pip pulls CUDA), as the Makefile does.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
VOLUME ["/data", "/cache"]

FROM base AS coordinator
EXPOSE 8000
CMD ["mergenet", "coordinator", "up", "--host", "0.0.0.0", "--port", "8000"]
