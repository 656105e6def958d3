# One image for both processes of ollama-operator: `ollama-operator run` (the controller
# Deployment) and `ollama-operator sidecar` (the gateway in every Ollama pod, which the
# operator starts from this same image: OLLAMA_OPERATOR_IMAGE).
#
#   docker build -t ollama-operator:0.1.0 .
#
# The build stage installs the package with its `fast` extra (uvloop) into a virtual
# environment; the final stage is the same slim Python with only that environment added,
# no compiler, no pip cache, no dev dependencies, running as UID 65532.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/ollama-operator
COPY pyproject.toml README.md ./
COPY operator/ operator/
# A regular (non-editable) install: the image needs no source tree, and the bytecode is
# compiled here because the containers run with a read-only root filesystem.
RUN /opt/ollama-operator/bin/pip install --no-cache-dir ".[fast]"

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="ollama-operator" \
      org.opencontainers.image.description="Kubernetes operator and gateway sidecar for Ollama servers" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/ollama-operator/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/ollama-operator /opt/ollama-operator
# Ports: 8081 kopf liveness and 8082 metrics (run); 8080 gateway and 9090 admin (sidecar).
EXPOSE 8080 8081 8082 9090
USER 65532:65532
ENTRYPOINT ["ollama-operator"]
CMD ["--help"]
