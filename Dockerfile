# The inferq worker image (also runs the demo/bench tooling). Dependencies are
# installed from the committed lockfile with their install scripts off
# (onnxruntime-node ships its CPU binary in the package); the worker loads
# @inferq/onnx (a workspace package here) for builtin:onnx-default.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json ./
COPY scripts ./scripts
COPY packages ./packages
# The bins run dist/ (plain Node): build core, onnx, client and worker.
RUN npx -y pnpm@12.4.2 install --frozen-lockfile && npx -y pnpm@12.4.2 build && npx -y pnpm@12.4.2 store prune
ENV NODE_ENV=production
ENTRYPOINT ["node", "packages/worker/bin/inferq-worker.mjs"]
CMD ["--model", "default", "--module", "builtin:onnx-default"]
