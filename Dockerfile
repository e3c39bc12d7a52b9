# One image for the three services; docker-compose.yml picks the process by `command`.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/gozon
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when pyproject.toml
# changes. Empty stand-ins for README.md and the packages get them installed; the stubs'
# build leftovers go, or setuptools would find them newer than the real files and keep them.
COPY pyproject.toml ./
RUN mkdir gozon supervisors \
    && touch README.md gozon/__init__.py supervisors/__init__.py \
    && /opt/gozon/bin/pip install . \
    && /opt/gozon/bin/pip uninstall --yes gozon \
    && rm -r build gozon.egg-info
COPY README.md ./
COPY gozon ./gozon
COPY supervisors ./supervisors
RUN /opt/gozon/bin/pip install --no-deps .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 gozon \
    && useradd --system --uid 10001 --gid gozon --no-create-home --shell /usr/sbin/nologin gozon
COPY --from=build /opt/gozon /opt/gozon
# The shopper's page, which the gateway serves at `/` from GOZON_CLIENT_DIR.
COPY client /srv/client
# The GOZON_* settings are the compose file's (or the orchestrator's) to give.
ENV PATH=/opt/gozon/bin:$PATH \
    PYTHONUNBUFFERED=1
# By number, so that a runtime that forbids root can verify it without /etc/passwd.
USER 10001:10001
EXPOSE 8080 8081 8082
CMD ["python", "-m", "supervisors.gateway"]
