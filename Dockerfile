# syntax=docker/dockerfile:1
# rnnmt: the translation service (FastAPI + uvicorn) with the released models, CPU PyTorch by default.
#
#   docker build -t rnnmt .
#   docker run --rm -p 8000:8000 rnnmt            # then: curl localhost:8000/health
#
# Build arguments (see deploy/README.md):
#   PYTHON_IMAGE     base image of both stages. The default is a tag; for production pin it by digest,
#                    e.g. --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
#   TORCH_SPEC       torch requirement, default "torch==2.13.0"
#   TORCH_INDEX_URL  index of that torch build: the CPU one by default; for CUDA e.g.
#                    --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 --build-arg TORCH_SPEC=torch==2.13.0
#   PIP_FIND_LINKS   a wheelhouse that holds the torch wheel, bind-mounted for the build only
#                    (podman build -v /opt/wheels:/opt/wheels:ro --build-arg PIP_FIND_LINKS=/opt/wheels)
# Settings are environment variables only (RNNMT_*, see app/settings.py): nothing is read from files baked here.
ARG PYTHON_IMAGE=python:3.11-slim

# ---- build stage: a venv with torch and the package; nothing of it but /opt/venv reaches the final image ----
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"
ARG PIP_FIND_LINKS=""
WORKDIR /src
# docker/install.sh is the one install recipe (tests/test_deploy.py replays it). Torch gets its own layer, so
# editing the code reinstalls only the package and its small dependencies.
COPY docker/install.sh docker/install.sh
RUN TORCH_SPEC="$TORCH_SPEC" TORCH_INDEX_URL="$TORCH_INDEX_URL" PIP_FIND_LINKS="$PIP_FIND_LINKS" \
    sh docker/install.sh torch /opt/venv
COPY pyproject.toml README.md ./
COPY app app
COPY model model
COPY training training
RUN TORCH_SPEC="$TORCH_SPEC" TORCH_INDEX_URL="$TORCH_INDEX_URL" \
    sh docker/install.sh package /opt/venv /src
# What serving never loads leaves the venv here (torch's C++ tests and headers, pip, unused bytecode): ~260 MB.
COPY docker/slim-venv.sh docker/slim-venv.sh
RUN sh docker/slim-venv.sh /opt/venv
# The shipped models, made readable for the non-root user here (training writes its files 0600), so the final
# image gets them in one layer with the right modes.
COPY released-models /src/released-models
RUN chmod -R u=rwX,go=rX /src/released-models

# ---- run stage ----
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="rnnmt" \
      org.opencontainers.image.description="Self-hostable RNN (GRU/LSTM, Bahdanau attention) machine translation service" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 rnnmt \
    && useradd --system --uid 10001 --gid rnnmt --home-dir /app --no-create-home --shell /usr/sbin/nologin rnnmt
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The shipped models; other folders can be mounted and named by RNNMT_MODELS_DIR (deploy/compose.yaml).
COPY --from=build /src/released-models /app/released-models
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RNNMT_MODELS_DIR=/app/released-models \
    RNNMT_DEVICE=auto
USER 10001:10001
EXPOSE 8000
# Liveness only (the process answers); readiness (models loaded) is GET /ready. urllib: the slim base has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
CMD ["rnnmt", "serve", "--host", "0.0.0.0", "--port", "8000"]
