# Images of the operator and the sidecar, one multi-stage build:
#   docker build --target operator -t blockmirror/operator .
#   docker build --target sidecar  -t blockmirror/sidecar .
# The build stage has the dev dependencies (TypeScript); the final stages only the
# compiled JavaScript, the .proto files the gRPC loader reads, and production dependencies.
# The base images are build arguments with the public images as defaults; where no
# registry is reachable, hack/build-images.sh passes locally made equivalents.

ARG NODE_IMAGE=node:24-slim
# Go 1.26 or later: sidecar/native/nbd-netlink/go.mod asks for it.
ARG GO_IMAGE=golang:1.26-bookworm

# The CSI spec's csi.proto (for the sidecar's CSI proxy) is a Go module pinned in
# proto/csi-spec.json, fetched like any dependency rather than copied into the repo.
FROM ${GO_IMAGE} AS csi-spec
COPY proto/csi-spec.json /tmp/csi-spec.json
RUN set -eu; cd /tmp; \
    module=$(sed -n 's/^ *"module": "\(.*\)",\{0,1\}$/\1/p' csi-spec.json); \
    version=$(sed -n 's/^ *"version": "\(.*\)",\{0,1\}$/\1/p' csi-spec.json); \
    dir=$(go mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'); \
    mkdir -p /csi-spec && cp "$dir/csi.proto" /csi-spec/

# The kubelet's plugin registration api.proto (the CSI proxy registers with the kubelet
# through it), from the k8s.io/kubelet module pinned in proto/plugin-registration.json.
FROM ${GO_IMAGE} AS plugin-registration
COPY proto/plugin-registration.json /tmp/pin.json
RUN set -eu; cd /tmp; \
    module=$(sed -n 's/^ *"module": "\(.*\)",\{0,1\}$/\1/p' pin.json); \
    version=$(sed -n 's/^ *"version": "\(.*\)",\{0,1\}$/\1/p' pin.json); \
    file=$(sed -n 's/^ *"file": "\(.*\)",\{0,1\}$/\1/p' pin.json); \
    dir=$(go mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'); \
    mkdir -p /plugin-registration && cp "$dir/$file" /plugin-registration/

# blockmirror-nbd, the netlink helper the node splice drives the kernel's NBD client with.
FROM ${GO_IMAGE} AS nbd-helper
COPY sidecar/native/nbd-netlink /src
RUN cd /src && CGO_ENABLED=0 go build -trimpath -o /blockmirror-nbd .

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proto ./proto
COPY sidecar ./sidecar
COPY operator ./operator
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/proto ./proto
COPY --from=csi-spec /csi-spec ./csi-spec
COPY --from=plugin-registration /plugin-registration ./plugin-registration
ENV BLOCKMIRROR_CSI_PROTO_DIR=/app/csi-spec BLOCKMIRROR_PLUGIN_REGISTRATION_PROTO_DIR=/app/plugin-registration
ENTRYPOINT ["node", "/app/dist/sidecar/cli/main.js"]

# Non-root; the chart also runs it with a read-only root filesystem and no capabilities
# (the operator writes nothing to disk).
FROM runtime AS operator
USER node
CMD ["operator"]

# Privileged in the DaemonSet (block devices, the kubelet's staged volumes); its state
# lives in a hostPath. The node splice's tools: dmsetup, era_invalidate (dm-era's
# metadata), losetup/blockdev/mount, mkfs.ext4/blkid for the CSI proxy, fallocate (zero
# runs punched out of a volume, not written), and the NBD netlink helper.
FROM runtime AS sidecar
RUN apt-get update && apt-get install -y --no-install-recommends dmsetup thin-provisioning-tools util-linux mount e2fsprogs \
    && rm -rf /var/lib/apt/lists/*
COPY --from=nbd-helper /blockmirror-nbd /usr/local/bin/blockmirror-nbd
CMD ["sidecar", "--state-dir", "/var/lib/blockmirror", "--nbd-helper", "/usr/local/bin/blockmirror-nbd"]
