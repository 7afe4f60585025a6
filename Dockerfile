# The ainode app image: one image, one role per container (docker-compose.yml picks it with `command`):
#   dist/api/server.js | dist/workers/orchestrator.js | dist/workers/executor.js | dist/workers/llm.js
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# The Python SDK is injected into job containers by the executor; ship it beside the compiled code.
RUN npm run build && mkdir -p dist/sdk && cp -r sdk/python dist/sdk/python

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY sdk ./sdk
COPY temporal-config ./temporal-config
USER node
ENTRYPOINT ["node", "--enable-source-maps"]
CMD ["dist/api/server.js"]
