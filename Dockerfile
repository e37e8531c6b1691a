# One image for both services (CPU torch). docker-compose.yml runs it as the sender, the receiver
# and a one-shot demo client.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The CPU build of torch first (its own index; the default one would pull CUDA), in its own layer
# so that code changes do not re-download it.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY common ./common
COPY sender ./sender
COPY receiver ./receiver
RUN pip install . \
    && useradd --create-home --uid 10001 gancodec \
    && mkdir -p /data \
    && chown gancodec:gancodec /data

USER gancodec
VOLUME ["/data"]
EXPOSE 8000 8001

# Default: the sender. The compose file picks the role per service.
CMD ["python", "-m", "sender", "--host", "0.0.0.0", "--port", "8000"]
