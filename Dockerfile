# syntax=docker/dockerfile:1
#
# wsproxy container image: build with the full toolchain, run on distroless
# Node 22 (no shell, no package manager) with production dependencies and the
# compiled dist/ only, as a non-root user, node as PID 1.
#
#   docker build -t wsproxy .
#   docker run --rm -p 8080:8080 -p 10000-10100:10000-10100 wsproxy
#
# Expected size: about 160 MB uncompressed, about 55 MB compressed (distroless
# nodejs22-debian12 base ~141 MB + production node_modules ~19 MB + dist < 1 MB).

# ---- build: dev dependencies and TypeScript → dist/ ------------------------
FROM node:22-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- deps: production dependencies only --------------------------------------
# Same Debian 12 / glibc as the runtime image, so bufferutil's prebuilt linux-x64
# binary loads (its install script only checks that; nothing is compiled). On
# architectures without a prebuild it compiles here, where the toolchain is.
FROM node:22-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime -------------------------------------------------------------------
FROM gcr.io/distroless/nodejs22-debian12:nonroot AS runtime
WORKDIR /app
ENV NODE_ENV=production
# Each read from a target allocates a fresh 64 KiB buffer; with glibc's default
# trim threshold the freed memory goes back to the kernel after every GC and is
# faulted in again on the next reads (download ~0.6x the plain relay). V8 frees
# those buffers in batches of 64 MiB and more, so a threshold below that still
# trims now and then (32 MiB: up to 200 000 page faults per GiB in a sample);
# 128 MiB took them to none. The price: up to 128 MiB of freed heap stays with
# the process after a burst; lower it under a tight memory limit
# (docs/performance.md).
ENV MALLOC_TRIM_THRESHOLD_=134217728
# A target name lookup (getaddrinfo) holds a libuv pool thread until the system
# resolver gives up, long after DNS_TIMEOUT_MS for a name whose servers never
# answer. 16 threads (Node's default is 4), of which DNS_MAX_LOOKUPS (8) may be
# lookups, leave the rest to file and crypto work. Only the environment can set
# it: the ES module loader starts the pool before dist/main.js runs.
ENV UV_THREADPOOL_SIZE=16
# package.json is needed at run time: it declares "type": "module" for dist/.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Files stay owned by root and read-only to the service user.
USER 65532:65532
# HTTP/WebSocket (PORT), the raw TCP tunnel range (TUNNEL_PORT_MIN..TUNNEL_PORT_MAX).
# With METRICS_PORT set, publish that port to your Prometheus as well.
EXPOSE 8080 10000-10100
STOPSIGNAL SIGTERM
# Liveness only: /health never depends on anything outside the process.
# Asks the address the service listens on: 127.0.0.1 for a wildcard BIND_HOST (:: listens on both families), else BIND_HOST itself (IPv6 in brackets).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/nodejs/bin/node", "-e", "const h=(process.env.BIND_HOST||'').trim().replace(/^\\[|\\]$/g,'');const a=h===''||h==='0.0.0.0'||h==='::'?'127.0.0.1':h.includes(':')?'['+h+']':h;fetch('http://'+a+':'+((process.env.PORT||'').trim()||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form, no shell: SIGTERM reaches node, which drains (SHUTDOWN_TIMEOUT_MS) and exits 0.
ENTRYPOINT ["/nodejs/bin/node"]
CMD ["dist/main.js"]
