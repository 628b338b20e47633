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

# 4000 gateway (HTTP + graphql-ws), 4001 libp2p TCP, 8080 node status API or console.
EXPOSE 4000 4001 8080
CMD ["npm", "run", "gateway"]
