"""docker-compose.yml as this machine can run it: each application service's `command`
and `environment` as a local process, with the compose network emulated on loopback.

A URL that names a compose service and the port it listens on is pointed at where that
service runs here (PostgreSQL and RabbitMQ: the local servers, in a database and vhost
of this test slot); a URL that nothing in the network would answer — a wrong host name
or port, a default left on 127.0.0.1 (the container itself), a service that binds its
container's loopback only — is pointed at a port where nothing listens. So a setting
missing from the file, misnamed or mistyped fails here as it would in the containers.
Likewise a path setting must lie in what the Dockerfile copies into the image.
"""

from __future__ import annotations

import re
from graphlib import TopologicalSorter
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import msgspec
import yaml

from gozon.amqp.broker import node_urls
from gozon.config import ENVIRONMENT, Settings
from tests.settings import TEST_SETTINGS, VHOST

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

DEAD = "127.0.0.1:1"
NOWHERE = "/nonexistent"
# The slot's block of ten ports, past the e2e stack's and test_faults' proxies.
FIRST_PORT = TEST_SETTINGS.gateway_port + 7
SMOKE_VHOST = f"{VHOST}_compose"
URL_FIELDS = [field for field in ENVIRONMENT if "://" in str(getattr(Settings(), field))]
PATH_FIELDS = [field for field in ENVIRONMENT if str(getattr(Settings(), field)).startswith("/")]
_LOOPBACK = re.compile(r"\b(?:127\.0\.0\.1|localhost):(\d+)")


def load() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def image_files() -> dict[str, Path]:
    """What the Dockerfile's final stage copies from the checkout: image path → path here."""
    final_stage = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[-1]
    return {dest.rstrip("/"): ROOT / source
            for source, dest in re.findall(r"^COPY\s+([^-\s]\S*)\s+(\S+)\s*$", final_stage, re.MULTILINE)}


def local_path(path: str) -> str:
    for dest, source in image_files().items():
        if path == dest or path.startswith(dest + "/"):
            return str(source) + path.removeprefix(dest)
    return NOWHERE


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    return dict(item.split("=", 1) for item in env) if isinstance(env, list) else {k: str(v) for k, v in env.items()}


class App(msgspec.Struct, kw_only=True):
    """An application service: what compose runs, and how it runs here."""

    name: str
    kind: str  # gateway, orders or payments: `python -m supervisors.<kind>`
    command: list[str]
    port: int  # where it listens in its container
    local_port: int  # where it listens here
    open: bool  # binds more than its container's loopback: other containers reach it
    settings: Settings = Settings()  # as here: URLs, paths and its port rewritten
    reaches: set[str] = set()  # the compose services its URLs name


class Network:
    def __init__(self, compose: dict) -> None:
        # What `docker compose up` runs: a profile's services (`cluster`: two more
        # RabbitMQ nodes) only start when it is asked for.
        self.services: dict[str, dict] = {name: service for name, service in compose["services"].items()
                                          if not service.get("profiles")}
        self.postgres = self._by_image("postgres")
        self.rabbitmq = self._by_image("rabbitmq")
        self.databases: dict[str, str] = {}  # compose database → local DSN
        given: dict[str, Settings] = {}
        self.apps: dict[str, App] = {}
        for n, (name, service) in enumerate((n, s) for n, s in self.services.items() if "build" in s):
            env = environment(service)
            unknown = sorted(var for var in env if var.startswith("GOZON_") and var not in ENVIRONMENT.values())
            assert not unknown, f"{name}: no such setting {unknown} (gozon/config.py)"
            given[name] = Settings.from_env(env)
            kind = service["command"][-1].removeprefix("supervisors.")
            self.apps[name] = App(name=name, kind=kind, command=service["command"],
                                  port=getattr(given[name], f"{kind}_port"), local_port=FIRST_PORT + n,
                                  open=given[name].host not in ("127.0.0.1", "localhost", "::1"))
        for name, app in self.apps.items():
            urls = {field: self._urls(field, getattr(given[name], field), app) for field in URL_FIELDS}
            paths = {field: local_path(getattr(given[name], field)) for field in PATH_FIELDS}
            app.settings = msgspec.structs.replace(given[name], **urls, **paths,
                                                   **{f"{app.kind}_port": app.local_port})

    def _by_image(self, image: str) -> str:
        [name] = [n for n, s in self.services.items() if s.get("image", "").startswith(f"{image}:")]
        return name

    def _urls(self, field: str, value: str, app: App) -> str:
        # GOZON_AMQP_URL may list several nodes: each is pointed where it runs here.
        nodes = node_urls(value) if field == "amqp_url" else [value]
        return ",".join(self._local(urlsplit(node), app) for node in nodes)

    def _local(self, url: SplitResult, app: App) -> str:
        host, port = url.hostname, url.port
        # 5432 and 5672: where the postgres and rabbitmq images listen.
        if host == self.postgres and port == 5432:
            app.reaches.add(host)
            env = environment(self.services[host])
            user = env.get("POSTGRES_USER", "postgres")
            assert (url.username, url.password) == (user, env.get("POSTGRES_PASSWORD")), f"{app.name}: {url.geturl()}"
            name = url.path.lstrip("/")
            assert name in self.created_databases(), f"{app.name}: nothing creates the database {name}"
            self.databases[name] = TEST_SETTINGS.orders_db.rsplit("/", 1)[0] + f"/{SMOKE_VHOST}_{name}"
            return self.databases[name]
        if host == self.rabbitmq and port == 5672:
            app.reaches.add(host)
            env = environment(self.services[host])
            assert url.username != "guest", f"{app.name}: RabbitMQ lets guest in from its own host only"
            assert (url.username, url.password) == (env.get("RABBITMQ_DEFAULT_USER"), env.get("RABBITMQ_DEFAULT_PASS"))
            assert url.path in ("", "/"), f"{app.name}: the vhost {url.path} is not created"
            return TEST_SETTINGS.amqp_url.rsplit("/", 1)[0] + f"/{SMOKE_VHOST}"
        for other in self.apps.values():
            if (host, port) == (other.name, other.port) and other.open:
                app.reaches.add(host)
                return url._replace(netloc=f"127.0.0.1:{other.local_port}").geturl()
        return url._replace(netloc=DEAD).geturl()

    def created_databases(self) -> set[str]:
        """POSTGRES_DB, and what the init scripts mounted into the image create."""
        service = self.services[self.postgres]
        env = environment(service)
        names = {env.get("POSTGRES_DB", env.get("POSTGRES_USER", "postgres"))}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if target.startswith("/docker-entrypoint-initdb.d/") and target.endswith(".sql"):
                names |= set(re.findall(r"CREATE DATABASE\s+\"?(\w+)", (ROOT / source).read_text(), re.IGNORECASE))
        return names

    def healthcheck(self, app: App) -> list[str]:
        """The service's healthcheck command; in its container, loopback is the service."""
        kind, *command = self.services[app.name]["healthcheck"]["test"]
        assert kind == "CMD", f"{app.name}: healthcheck {kind} (this test runs CMD ones)"

        def local(match: re.Match) -> str:
            return f"127.0.0.1:{app.local_port}" if int(match[1]) == app.port else DEAD

        return [_LOOPBACK.sub(local, part) for part in command]

    def published(self) -> list[App]:
        """The applications that publish a port (`ports: ["HOST:CONTAINER"]`)."""
        published = []
        for app in self.apps.values():
            for spec in self.services[app.name].get("ports", []):
                target = int(str(spec).rsplit(":", 1)[-1])
                assert target == app.port, f"{app.name} publishes {target} but listens on {app.port}"
                assert app.open, f"{app.name} publishes {target} but binds its container's loopback only"
                published.append(app)
        return published

    def start_order(self) -> list[App]:
        """Applications after those they depend on (a cycle raises graphlib.CycleError)."""
        graph = {name: [d for d in self.depends_on(app) if d in self.apps] for name, app in self.apps.items()}
        return [self.apps[name] for name in TopologicalSorter(graph).static_order()]

    def depends_on(self, app: App) -> dict[str, str]:
        """Each dependency of the service and the condition it waits for."""
        deps = self.services[app.name].get("depends_on", {})
        if isinstance(deps, list):
            return dict.fromkeys(deps, "service_started")
        return {name: dep.get("condition", "service_started") for name, dep in deps.items()}
