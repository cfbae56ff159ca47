# syntax=docker/dockerfile:1
# presence-ims: one image for every node of the network (docker-compose.yml runs
# one container per node with `presence-ims node ROLE --config ...`).
#
#   docker build -t presence-ims .
#   docker run --rm presence-ims --help

# -- build: a wheel of the project and of every dependency -----------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels .

# -- run -----------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels presence-ims

# An unprivileged user owns the state and PKI directories; named volumes mounted
# there start with this ownership.
RUN groupadd --system --gid 10001 ims \
 && useradd --system --uid 10001 --gid ims --home-dir /var/lib/presence-ims \
        --shell /usr/sbin/nologin ims \
 && mkdir -p /var/lib/presence-ims/state /var/lib/presence-ims/pki \
 && chown -R ims:ims /var/lib/presence-ims

WORKDIR /app
COPY configs ./configs
USER ims

# SIP Gm (P-CSCF), XCAP (PS); the other ports are for network peers only.
EXPOSE 5060/udp 5060/tcp 8080/tcp
ENTRYPOINT ["presence-ims"]
CMD ["--help"]
