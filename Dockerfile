# One image for every inferq process; the command picks it (API: apps/api/dist/main.js, worker:
# apps/worker/dist/main.js, all-in-one needs redis-server and is not meant for containers).

FROM node:20-bookworm-slim AS build
WORKDIR /app
# The CPU build of onnxruntime-node ships in the package; its postinstall download of the CUDA build
# is skipped (package.json's allowScripts too; docs/gpu.md tells GPU users how to get it).
ENV TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 ONNXRUNTIME_NODE_INSTALL=skip
COPY . .
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build --chown=node:node /app /app
USER node
EXPOSE 8080 9464
CMD ["node", "apps/api/dist/main.js"]
