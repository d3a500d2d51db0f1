# A Petals peer: the Petals environment only (transformers 4.34; never the main one), built
# by the same script and pin files as `make petals-env`. One image, two roles:
#   bootstrap DHT:  python -m mergenet.petals.side.dht --host-maddrs /ip4/0.0.0.0/tcp/31337 \
#                     --maddr-file /swarm/dht.maddr
#   block server:   petals-server MODEL_DIR --initial_peers MADDR --block_indices A:B ...
# Build from the repository root: docker build -f docker/petals-peer.Dockerfile .
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    HF_HUB_OFFLINE=1 PYTHONPATH=/app/src PATH=/app/.venv-petals/bin:$PATH
WORKDIR /app
COPY scripts/petals-env.sh ./scripts/
COPY src/mergenet/petals/side/requirements-petals.txt \
     src/mergenet/petals/side/requirements-petals-nodeps.txt ./src/mergenet/petals/side/
RUN bash scripts/petals-env.sh && rm -rf /root/.cache/pip
# Only the Petals side of mergenet: the import-free package roots and petals/side/.
COPY src/mergenet/__init__.py ./src/mergenet/
COPY src/mergenet/petals/__init__.py ./src/mergenet/petals/
COPY src/mergenet/petals/side ./src/mergenet/petals/side
COPY docker/petals-server /usr/local/bin/petals-server
EXPOSE 31337
ENTRYPOINT ["petals-server"]
