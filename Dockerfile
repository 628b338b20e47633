# One image for every Cairn process (node, collector, gateway, console): the services of
# docker-compose.yml differ only by their npm script.
FROM node:24-bookworm-slim

WORKDIR /app
# Production: the gateway serves no GraphiQL, introspection or field suggestions, and /metrics
# needs a token (CAIRN_GRAPHIQL=1 etc. turn them back on one by one; see gateway/env-options.ts).
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false

# Dependencies first, for layer caching. The postinstall step generates the Prisma clients
# from prisma/, so that folder comes along.
COPY package.json package-lock.json ./
COPY prisma ./prisma
# --include=dev: the pinned Node 24, tsx, Vite and the Prisma CLI are devDependencies.
RUN npm ci --no-audit --include=dev

COPY . .
# The console's static bundle (web/dist), served by `npm run console`.
RUN npm run build:web

# Every service runs as the image's unprivileged `node` user (uid 1000): a process that a hostile
# peer's bytes take over is not root, so it cannot ignore file modes, rewrite the code (/app stays
# root's) or use root's capabilities against the host. The data folders compose mounts belong to it (network-init, the one
# service compose runs as root, hands older root-owned volumes over with --owner 1000:1000).
RUN mkdir -p /cairn /gateway && chown node:node /cairn /gateway
USER node

# 4000 gateway (HTTP + graphql-ws), 4001 libp2p TCP, 8080 node status API or console.
EXPOSE 4000 4001 8080
CMD ["npm", "run", "gateway"]
