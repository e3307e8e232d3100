# The development OpenID provider (dev/op) as a container.
FROM node:20-bookworm-slim
WORKDIR /op
COPY dev/op/package.json dev/op/package-lock.json ./
RUN npm ci --omit=dev
COPY dev/op ./
COPY dev/demo /demo
USER node
EXPOSE 9400 3000
CMD ["node", "server.mjs"]
