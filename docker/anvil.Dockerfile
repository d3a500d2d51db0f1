# The test chain: foundry's anvil from the same npm pin the project uses (package.json).
# Build from the repository root: docker build -f docker/anvil.Dockerfile .
FROM node:22-bookworm-slim
WORKDIR /tools
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && npm cache clean --force
EXPOSE 8545
ENTRYPOINT ["/tools/node_modules/.bin/anvil"]
CMD ["--host", "0.0.0.0", "--port", "8545", "--chain-id", "31337", "--quiet"]
