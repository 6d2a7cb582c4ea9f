# The replay-attach image: `docker run IMAGE worker`, `serve --host 0.0.0.0`, `check`, `demo`.
# Builds with the classic builder and with BuildKit (no BuildKit-only syntax).
#   PYTHON_IMAGE   any Debian-based image with python3 (3.10+) and its venv module
#   PIP_INDEX_URL, PIP_CERT   pip's index, and a CA bundle in the build context (such as
#                             /src/.pip-ca.pem) for a TLS-inspecting proxy: build stage only
#   VERSION, REVISION, SOURCE  recorded in the image's labels
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Lets a build script remove the untagged images this stage leaves behind.
LABEL org.replay-attach.stage=build
ARG PIP_INDEX_URL
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY . .
# The wheel first, then a virtual environment holding it and its dependencies: the final
# stage copies that environment alone, so nothing of the build reaches it.
# An empty PIP_CERT or PIP_INDEX_URL (compose passes them through unset) would be a bad setting.
RUN if [ -z "$PIP_CERT" ]; then unset PIP_CERT; fi \
    && if [ -z "$PIP_INDEX_URL" ]; then unset PIP_INDEX_URL; fi \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && python3 -m venv /opt/replay-attach \
    && /opt/replay-attach/bin/pip install /wheels/*.whl \
    && /opt/replay-attach/bin/pip uninstall --yes --quiet pip setuptools wheel \
    && /opt/replay-attach/bin/replay-attach --help >/dev/null

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="replay-attach" \
      org.opencontainers.image.description="Attach PostHog session replays to Zendesk tickets and Jira issues, from a dramatiq worker." \
      org.opencontainers.image.licenses="GPL-3.0-or-later" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
# A fixed numeric id, so that Kubernetes' runAsNonRoot can check it without a user database.
RUN useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin replay-attach
COPY --from=build /opt/replay-attach /opt/replay-attach
ENV PATH=/opt/replay-attach/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    # An embedded Redis would be a queue no other container sees: worker and serve need REDIS_URL.
    REPLAY_ATTACH_REQUIRE_REDIS_URL=1 \
    # Reachable from outside the container (Prometheus, a probe); 127.0.0.1 would not be.
    REPLAY_ATTACH_METRICS_HOST=0.0.0.0
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9191
# exec form: replay-attach is PID 1 and receives docker stop's SIGTERM itself; its worker
# command forwards it to every process it forked and waits for their in-flight jobs.
ENTRYPOINT ["replay-attach"]
CMD ["--help"]
