# syntax=docker/dockerfile:1
# The mcserve image, built with exactly the scripts and package list of the
# offline CUDA-host build (scripts/offline/), so what the project tests is
# what this builds:
#   1. bundle:  Debian bookworm downloads the .deb bundle (bundle-debs.sh);
#   2. build:   a PyTorch CUDA devel image builds against its own LibTorch
#               and the unpacked bundle (build-offline.sh);
#   3. runtime: a PyTorch CUDA runtime image with the server, the CLI, the
#               bundle's shared libraries and the default model; non-root.
# Not built in this project's CI (no Docker engine there).
ARG PYTORCH_DEVEL=pytorch/pytorch:2.11.0-cuda13.0-cudnn9-devel
ARG PYTORCH_RUNTIME=pytorch/pytorch:2.11.0-cuda13.0-cudnn9-runtime

FROM debian:bookworm AS bundle
WORKDIR /src
COPY scripts/ scripts/
RUN apt-get update -q && scripts/offline/bundle-debs.sh /bundle

FROM ${PYTORCH_DEVEL} AS build
RUN apt-get update -q && apt-get install -y -q --no-install-recommends cmake ninja-build \
    && rm -rf /var/lib/apt/lists/*
COPY --from=bundle /bundle /bundle
WORKDIR /src
COPY . .
RUN MCSERVE_BUILD=/src/build PYTHON=python scripts/offline/build-offline.sh /bundle \
      -DCMAKE_BUILD_TYPE=Release -DMCSERVE_BUILD_TESTS=OFF

FROM ${PYTORCH_RUNTIME}
# The server links the image's PyTorch LibTorch (same path as in the build
# stage) and the bundle's gRPC, Protobuf, Abseil and prometheus-cpp; the
# SentencePiece shim (loaded at run time from LD_LIBRARY_PATH) holds the
# bundle's libsentencepiece.
COPY --from=build /bundle/root/usr/lib/x86_64-linux-gnu/ /opt/mcserve/lib/
COPY --from=build /src/build/server/tokenizer/libmcserve_spm.so /opt/mcserve/lib/
COPY --from=build /src/build/server/mcserve /src/build/client/mcserve-cli /opt/mcserve/bin/
COPY models/default/ /opt/mcserve/models/default/
ENV LD_LIBRARY_PATH=/opt/mcserve/lib \
    PATH=/opt/mcserve/bin:$PATH
RUN groupadd --gid 10001 mcserve && useradd --uid 10001 --gid 10001 --no-create-home mcserve
USER 10001:10001
EXPOSE 50051 9400
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
  CMD ["mcserve-cli", "--addr=127.0.0.1:50051", "--timeout=2", "health"]
ENTRYPOINT ["mcserve"]
CMD ["--model=/opt/mcserve/models/default", "--listen=0.0.0.0:50051", \
     "--metrics_listen=0.0.0.0:9400", "--device=cuda"]
