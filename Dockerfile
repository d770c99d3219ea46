# Q-Store server image:
#   docker build -t qstore .
#   docker run -p 8470:8470 -v qstore-data:/data -e QSTORE_API_KEY=change-me qstore
# Without an API key the server refuses to listen on 0.0.0.0 (see docs/PROTOCOL.md, Authentication).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY qstore ./qstore
COPY server ./server
COPY client ./client
RUN pip install ".[qdrant]" && rm -rf /src
# Compile the simulator's numba kernels into the image (cached beside the installed package),
# so a container does not spend its first seconds compiling them.
RUN python -c "import qstore.circuits; qstore.circuits.warm_up()"

RUN useradd --system --uid 10001 --home-dir /data qstore && mkdir -p /data && chown qstore /data
USER qstore
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8470

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8470/v1/health', timeout=4)"

# SIGTERM drains requests, stops jobs, then flushes and closes LMDB.
STOPSIGNAL SIGTERM
CMD ["qstore", "serve", "--data-dir", "/data", "--host", "0.0.0.0", "--port", "8470"]
