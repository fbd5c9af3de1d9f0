# The inferq worker image: `inferq-worker` installed from the packed packages,
# as an application would install them from a registry.
#
#   docker build -t inferq-worker .
#   docker run --rm -e REDIS_URL=redis://user:pw@redis-host:6379 inferq-worker --model m --module /models/model.mjs
#
# Stage 1 (build) installs the workspace from the lockfile, compiles the
# published packages and packs them (`pnpm pack`: the manifests consumers get).
# Stage 2 (runtime) holds only the tarballs' install with production
# dependencies: no sources, no TypeScript, no pnpm, no dev dependencies.
# docs/deploy.md describes the image and docker-compose.yml.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .pnpmfile.cjs tsconfig.base.json ./
COPY scripts ./scripts
COPY packages ./packages
# Dependency install scripts stay off (allowBuilds in pnpm-workspace.yaml).
RUN npx -y pnpm@12.4.2 install --frozen-lockfile \
 && npx -y pnpm@12.4.2 build \
 && mkdir /packs \
 && for p in core client worker onnx; do (cd "packages/$p" && npx -y pnpm@12.4.2 pack --pack-destination /packs) || exit 1; done

FROM node:20-bookworm-slim AS runtime
# Set before the install: npm then leaves dev dependencies out, and the
# libraries (pino, ...) run in production mode.
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /packs ./packs
# Installed as root and left owned by root: the user the worker runs as
# cannot change its own code. Install scripts off: onnxruntime-node ships its
# CPU binary in the package (its script only downloads optional GPU files).
# @inferq/onnx is included for --module builtin:onnx-default (the default CMD).
RUN printf '{ "name": "inferq-worker-image", "private": true, "type": "module" }\n' > package.json \
 && ONNXRUNTIME_NODE_INSTALL=skip npm install --omit=dev --ignore-scripts --no-audit --no-fund \
      ./packs/inferq-core-*.tgz ./packs/inferq-worker-*.tgz ./packs/inferq-client-*.tgz ./packs/inferq-onnx-*.tgz \
 && npm cache clean --force

# The worker's /metrics and /healthz server: on every interface of the
# container (reach it only through the container network or a published
# port), on a fixed port the HEALTHCHECK below asks.
ENV INFERQ_METRICS_PORT=9464 \
    INFERQ_METRICS_HOST=0.0.0.0
EXPOSE 9464

# The non-root user of the node image (uid 1000).
USER node

# Healthy while the worker's health endpoint answers 2xx. node's own fetch:
# the slim image has no curl. A bounded request, so a hung worker fails the
# check instead of stalling it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.INFERQ_METRICS_PORT || '9464') + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node runs the bin directly as PID 1 and gets SIGTERM itself: the worker
# finishes the batches in hand within --stop-timeout-ms (INFERQ_STOP_TIMEOUT_MS).
ENTRYPOINT ["node", "/app/node_modules/@inferq/worker/bin/inferq-worker.mjs"]
CMD ["--model", "default", "--module", "builtin:onnx-default"]
