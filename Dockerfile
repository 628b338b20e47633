# One image for every Cairn process (node, collector, gateway, console): the services of
# docker-compose.yml differ only by their npm script.
FROM node:24-bookworm-slim

WORKDIR /app
# GraphiQL stays on (the gateway turns it off when NODE_ENV=production).
ENV NODE_ENV=development \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false

# Dependencies first, for layer caching. The postinstall step generates the Prisma clients
# from prisma/, so that folder comes along.
COPY package.json package-lock.json ./
COPY prisma ./prisma
RUN npm ci --no-audit

COPY . .
# The console's static bundle (web/dist), served by `npm run console`.
RUN npm run build:web

# 4000 gateway (HTTP + graphql-ws), 4001 libp2p TCP, 8080 node status API or console.
EXPOSE 4000 4001 8080
CMD ["npm", "run", "gateway"]
