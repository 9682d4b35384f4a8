# CPU image of sarcodec: the CLI, and `sarcodec serve` as the default command, run as a non-root user.
#
#   docker build -t sarcodec .
#   docker run --rm -p 8000:8000 -e SARCODEC_API_TOKEN=... sarcodec          # the HTTP service on port 8000
#   docker run --rm -v "$PWD:/data" sarcodec compress /data/scene.tif -o /data/scene.sarc
#   docker run --rm -v "$PWD:/data" sarcodec decompress /data/scene.sarc -o /data/scene_rec.tif
#
# It installs with the README's command (scripts/setup.sh: .venv with the CPU PyTorch build and sarcodec).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 sarcodec
WORKDIR /opt/sarcodec
COPY --chown=sarcodec:sarcodec pyproject.toml README.md ./
COPY --chown=sarcodec:sarcodec scripts ./scripts
COPY --chown=sarcodec:sarcodec sarcodec ./sarcodec
USER sarcodec
RUN bash scripts/setup.sh

ENV PATH=/opt/sarcodec/.venv/bin:$PATH \
    SARCODEC_TMPDIR=/tmp/sarcodec
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
ENTRYPOINT ["sarcodec"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
