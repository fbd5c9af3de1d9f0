# The inferq worker image (also runs the demo/bench tooling). Dependencies are
# installed from the committed lockfile with their install scripts off
# (onnxruntime-node ships its CPU binary in the package).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json ./
COPY packages ./packages
RUN npx -y pnpm@12.4.2 install --frozen-lockfile && npx -y pnpm@12.4.2 store prune
ENV NODE_ENV=production
ENTRYPOINT ["node", "packages/worker/bin/inferq-worker.mjs"]
CMD ["--model", "default", "--module", "builtin:onnx-default"]
