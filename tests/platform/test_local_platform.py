"""The local platform's files hold together (docs/local-platform.md).

Neither Traefik nor the Astro Runtime image can run on the test machines, so these
checks read the files the way those programs would: Compose validates the compose files
(`docker compose config`, or Debian's `docker-compose` v1, which needs no engine);
Traefik's static and dynamic configuration parse, and every router reaches a service
and middlewares that exist; the TLS files they name are the ones `make-certs.sh` makes
(run here for real, its certificate read back with openssl); Astro's base image is
pinned; `requirements.txt` and `airflow_settings.yaml` stay in step with constraints.txt
and with the tenants under warehouses/.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dag_factory.loader import Loader
from dag_factory.secrets import connection_url

REPO = Path(__file__).resolve().parents[2]
TRAEFIK = REPO / "traefik"
ASTRO = REPO / "astro"
WAREHOUSES = REPO / "warehouses"

#: The hosts the platform serves, each one routed and named in the certificate.
PLATFORM_HOSTS = {"traefik.localhost", "registry.localhost", "airflow.localhost"}
#: Providers the adapters need in the Astro image (pyproject's `airflow` extra, less the
#: standard provider that Astro Runtime ships).
ASTRO_PROVIDERS = {
    "apache-airflow-providers-docker",
    "apache-airflow-providers-cncf-kubernetes",
    "apache-airflow-providers-slack",
    "apache-airflow-providers-smtp",
}

#: A stand-in for the compose file the Astro CLI generates for Airflow 3 (its service and
#: network names), so the override can be validated the way `astro dev start` merges it.
ASTRO_CLI_COMPOSE = """\
x-common-env-vars: &common-env-vars
  AIRFLOW__API__BASE_URL: "http://localhost:8080"
  AIRFLOW__CORE__EXECUTOR: LocalExecutor
networks:
  airflow:
    driver: bridge
volumes:
  airflow_logs: {}
services:
  postgres:
    image: postgres:12.6
    networks: [airflow]
    environment: {POSTGRES_USER: postgres, POSTGRES_PASSWORD: postgres}
  db-migration:
    image: tenant-runner/airflow:latest
    command: [airflow, db, migrate]
    networks: [airflow]
    environment: *common-env-vars
"""
ASTRO_CLI_AIRFLOW_SERVICES = ("scheduler", "dag-processor", "api-server", "triggerer")


# --- helpers ------------------------------------------------------------------------------


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@functools.cache
def compose_command() -> list[str]:
    """`docker compose` when the plugin is there, else Debian's `docker-compose` (v1)."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]):
            probe = subprocess.run([*command, "version"], capture_output=True, check=False)
            if probe.returncode == 0:
                return command
    pytest.fail(
        "no Docker Compose to validate the compose files: `make services` installs one "
        "(scripts/services/compose.sh)"
    )


def compose_config(*files: Path, project_dir: Path) -> dict[str, Any]:
    """The merged configuration as Compose resolves it; fails with Compose's own words."""
    args = [f"--file={file}" for file in files]
    result = subprocess.run(
        [*compose_command(), f"--project-directory={project_dir}", *args, "config"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DOCKER_GID": "999"},
    )
    assert result.returncode == 0, f"compose rejects {[f.name for f in files]}:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


def astro_cli_compose(tmp_path: Path) -> Path:
    base = yaml.safe_load(ASTRO_CLI_COMPOSE)
    for name in ASTRO_CLI_AIRFLOW_SERVICES:
        base["services"][name] = {
            "image": "tenant-runner/airflow:latest",
            "command": ["airflow", name],
            "networks": ["airflow"],
            "user": "astro",
            "environment": dict(base["x-common-env-vars"]),
            "labels": {"io.astronomer.docker": "true"},
            "volumes": [
                f"{ASTRO}/dags:/usr/local/airflow/dags:z",
                f"{ASTRO}/include:/usr/local/airflow/include:z",
            ],
        }
    file = tmp_path / "astro-cli-compose.yml"
    file.write_text(yaml.safe_dump(base))
    return file


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path → host path of a service's volumes (short syntax, as written)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def _labels(service: dict[str, Any]) -> dict[str, str]:
    labels = service.get("labels") or {}
    if isinstance(labels, list):
        labels = dict(item.split("=", 1) for item in labels)
    return {str(k): str(v) for k, v in labels.items()}


# --- Traefik's routing table, as its two providers see it -------------------------------

INTERNAL_SERVICES = {"api@internal", "dashboard@internal", "noop@internal", "ping@internal"}


@dataclass
class Provider:
    name: str
    routers: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: set[str] = field(default_factory=set)
    middlewares: set[str] = field(default_factory=set)


def file_provider() -> Provider:
    provider = Provider("file")
    for file in sorted((TRAEFIK / "dynamic").glob("*.yml")):
        http = (_load(file) or {}).get("http", {})
        for name, router in http.get("routers", {}).items():
            provider.routers[name] = {**router, "_origin": file.name}
        provider.services |= set(http.get("services", {}))
        provider.middlewares |= set(http.get("middlewares", {}))
    return provider


def docker_provider() -> Provider:
    """Routers, services and middlewares declared by container labels in both compose files."""
    provider = Provider("docker")
    compose_files = [TRAEFIK / "docker-compose.yml", ASTRO / "docker-compose.override.yml"]
    for file in compose_files:
        for service_name, service in _load(file)["services"].items():
            labels = _labels(service)
            if labels.get("traefik.enable") != "true":
                continue
            for key, value in labels.items():
                parts = key.split(".")
                if parts[:2] == ["traefik", "http"] and len(parts) >= 5:
                    kind, name, attribute = parts[2], parts[3], ".".join(parts[4:])
                    if kind == "routers":
                        router = provider.routers.setdefault(
                            name, {"_origin": f"{file.parent.name}/{file.name}:{service_name}"}
                        )
                        router[attribute] = value
                    elif kind == "services":
                        provider.services.add(name)
                    elif kind == "middlewares":
                        provider.middlewares.add(name)
    return provider


def _router_hosts(rule: str) -> set[str]:
    return set(re.findall(r"Host\(`([^`]+)`\)", rule))


def _reference_exists(ref: str, own: Provider, providers: dict[str, Provider], kind: str) -> bool:
    if ref.endswith("@internal"):
        return kind == "services" and ref in INTERNAL_SERVICES
    name, _, provider_name = ref.partition("@")
    provider = providers.get(provider_name) if provider_name else own
    return provider is not None and name in getattr(provider, kind)


# --- compose --------------------------------------------------------------------------------


def test_traefik_compose_is_valid():
    config = compose_config(TRAEFIK / "docker-compose.yml", project_dir=TRAEFIK)
    assert config["networks"]["edge"]["external"] is True
    assert config["networks"]["edge"].get("name", "edge") == "edge"
    registry = config["services"]["registry"]
    assert registry["environment"]["REGISTRY_STORAGE_DELETE_ENABLED"] == "true"
    assert ("registry-data", "/var/lib/registry") in _volumes(registry), registry["volumes"]
    for name, service in config["services"].items():
        assert "edge" in service["networks"], f"{name} is not on the edge network"
        image = service["image"]
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{name}: {image} is not an exact tag"
    assert config["services"]["traefik"]["image"].startswith("traefik:v3.")


def _volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of the volumes in a resolved config, short or long syntax."""
    volumes = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):  # Compose v2 prints the long syntax
            volumes.append((volume.get("source", ""), volume["target"]))
        else:
            source, target, *_ = volume.split(":")
            volumes.append((source, target))
    return volumes


def test_astro_override_merges_over_the_astro_cli_compose(tmp_path: Path):
    config = compose_config(
        astro_cli_compose(tmp_path), ASTRO / "docker-compose.override.yml", project_dir=ASTRO
    )
    services = config["services"]
    assert config["networks"]["edge"]["external"] is True
    scheduler = services["scheduler"]
    assert set(scheduler["networks"]) >= {"airflow", "edge"}, "the scheduler left its network"
    volumes = _volumes(scheduler)
    assert ("/var/run/docker.sock", "/var/run/docker.sock") in volumes
    assert (str(WAREHOUSES), "/usr/local/airflow/include/warehouses") in volumes
    for name in ASTRO_CLI_AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["DAG_FACTORY_EXECUTOR"] == "docker", name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", "Astro's own env was lost"
    assert set(services["api-server"]["networks"]) >= {"airflow", "edge"}
    assert "tenant-postgres" in services["postgres"]["networks"]["edge"]["aliases"]


# --- Traefik --------------------------------------------------------------------------------

STATIC_KEYS = {
    "global",
    "serversTransport",
    "tcpServersTransport",
    "entryPoints",
    "providers",
    "api",
    "metrics",
    "ping",
    "log",
    "accessLog",
    "tracing",
    "hostResolver",
    "certificatesResolvers",
    "experimental",
    "core",
    "spiffe",
    "ocsp",
}
DYNAMIC_KEYS = {"http", "tcp", "udp", "tls"}
HTTP_KEYS = {"routers", "services", "middlewares", "serversTransports"}


def traefik_service() -> dict[str, Any]:
    return _load(TRAEFIK / "docker-compose.yml")["services"]["traefik"]


def test_traefik_static_config_parses_and_matches_its_mounts():
    static = _load(TRAEFIK / "traefik.yml")
    assert set(static) <= STATIC_KEYS, f"unknown static keys: {set(static) - STATIC_KEYS}"
    entry_points = static["entryPoints"]
    assert entry_points["web"]["address"] == ":80"
    assert entry_points["websecure"]["address"] == ":443"
    assert entry_points["web"]["http"]["redirections"]["entryPoint"]["to"] == "websecure"
    assert static["api"]["dashboard"] is True
    assert not static["api"].get("insecure"), "the dashboard must not be served without TLS"
    assert "ping" in static, "the container's health check uses `traefik healthcheck --ping`"

    mounts = _mounts(traefik_service())
    assert mounts["/etc/traefik/traefik.yml"] == "./traefik.yml"
    assert mounts[static["providers"]["file"]["directory"]] == "./dynamic"
    docker = static["providers"]["docker"]
    assert docker["exposedByDefault"] is False
    assert docker["network"] == "edge"
    socket = docker["endpoint"].removeprefix("unix://")
    assert mounts[socket] == "/var/run/docker.sock"


def test_traefik_dynamic_config_parses():
    files = sorted((TRAEFIK / "dynamic").glob("*.yml"))
    assert files
    for file in files:
        dynamic = _load(file)
        assert isinstance(dynamic, dict) and dynamic, f"{file.name} is empty"
        assert set(dynamic) <= DYNAMIC_KEYS, f"{file.name}: {set(dynamic) - DYNAMIC_KEYS}"
        assert set(dynamic.get("http", {})) <= HTTP_KEYS, f"{file.name}: unknown http keys"


def test_every_router_reaches_a_service_that_exists():
    static = _load(TRAEFIK / "traefik.yml")
    providers = {"file": file_provider(), "docker": docker_provider()}
    routed_hosts: set[str] = set()
    problems = []
    for provider in providers.values():
        for name, router in provider.routers.items():
            where = f"{provider.name} router {name!r} ({router['_origin']})"
            service = router.get("service")
            if not service:
                problems.append(f"{where}: names no service")
            elif not _reference_exists(service, provider, providers, "services"):
                problems.append(f"{where}: service {service!r} does not exist")
            middlewares = router.get("middlewares", [])
            if isinstance(middlewares, str):
                middlewares = middlewares.split(",")
            for middleware in middlewares:
                if not _reference_exists(middleware, provider, providers, "middlewares"):
                    problems.append(f"{where}: middleware {middleware!r} does not exist")
            entry_points = router.get("entryPoints") or router.get("entrypoints", "")
            if isinstance(entry_points, str):
                entry_points = entry_points.split(",")
            if set(entry_points) != {"websecure"} or "websecure" not in static["entryPoints"]:
                problems.append(f"{where}: entry points {entry_points} (want websecure only)")
            if router.get("tls") not in ({}, "true"):
                problems.append(f"{where}: no TLS")
            hosts = _router_hosts(router.get("rule", ""))
            if not hosts or not all(h.endswith(".localhost") for h in hosts):
                problems.append(f"{where}: rule {router.get('rule')!r} is not Host(`*.localhost`)")
            routed_hosts |= hosts
    assert not problems, "\n".join(problems)
    assert routed_hosts == PLATFORM_HOSTS


def test_label_routed_containers_share_the_edge_network():
    for file in (TRAEFIK / "docker-compose.yml", ASTRO / "docker-compose.override.yml"):
        for name, service in _load(file)["services"].items():
            labels = _labels(service)
            if labels.get("traefik.enable") != "true":
                continue
            assert labels.get("traefik.docker.network") == "edge", f"{file.name}:{name}"
            assert "edge" in service["networks"], f"{file.name}:{name} is not on edge"
            ports = [k for k in labels if k.endswith(".loadbalancer.server.port")]
            assert ports, f"{file.name}:{name}: no loadbalancer.server.port label"


# --- certificates -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", str(TRAEFIK / "make-certs.sh"), str(out)], check=True)
    yield out


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def test_make_certs_gives_a_localhost_certificate_signed_by_its_ca(certs: Path):
    text = _openssl("x509", "-noout", "-text", "-in", str(certs / "localhost.crt"))
    san = text.split("X509v3 Subject Alternative Name:")[1].splitlines()[1]
    names = {part.strip().removeprefix("DNS:") for part in san.split(",") if "DNS:" in part}
    assert {"*.localhost", "localhost"} <= names
    assert names >= PLATFORM_HOSTS, "browsers need the platform hosts by name too"
    assert "TLS Web Server Authentication" in text
    verify = _openssl("verify", "-CAfile", str(certs / "ca.crt"), str(certs / "localhost.crt"))
    assert verify.strip().endswith("OK")
    cert_key = _openssl("x509", "-noout", "-pubkey", "-in", str(certs / "localhost.crt"))
    key = _openssl("pkey", "-pubout", "-in", str(certs / "localhost.key"))
    assert cert_key == key, "localhost.key does not belong to localhost.crt"


def test_make_certs_keeps_the_ca_it_already_made(certs: Path, tmp_path: Path):
    again = tmp_path / "again"
    shutil.copytree(certs, again)
    subprocess.run(["bash", str(TRAEFIK / "make-certs.sh"), str(again)], check=True)
    assert (again / "ca.crt").read_bytes() == (certs / "ca.crt").read_bytes()
    assert (again / "localhost.crt").read_bytes() != (certs / "localhost.crt").read_bytes()


def test_tls_files_traefik_reads_are_what_make_certs_makes(certs: Path):
    made = {file.name for file in certs.iterdir()}
    mounted_at = next(
        target for target, source in _mounts(traefik_service()).items() if source == "./certs"
    )
    referenced = []
    for file in sorted((TRAEFIK / "dynamic").glob("*.yml")):
        tls = (_load(file) or {}).get("tls", {})
        pairs = list(tls.get("certificates", []))
        pairs += [s["defaultCertificate"] for s in tls.get("stores", {}).values()]
        for pair in pairs:
            referenced += [pair["certFile"], pair["keyFile"]]
            cert = certs / Path(pair["certFile"]).name
            assert "BEGIN CERTIFICATE" in cert.read_text(), f"{cert.name} is not a certificate"
    assert referenced, "no TLS certificate configured"
    for path in referenced:
        assert Path(path).parent == Path(mounted_at), f"{path} is not in the certs mount"
        assert Path(path).name in made, f"{path}: make-certs.sh makes {sorted(made)}"


def test_generated_files_are_git_ignored():
    for path in ("traefik/certs/localhost.key", "astro/wheels/x.whl", "astro/.env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
        assert ignored.returncode == 0, f"{path} is not git-ignored"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "astro/include/warehouses/acme/warehouse.yaml"],
        cwd=REPO,
        check=False,
    )
    assert ignored.returncode == 0


# --- Astro ----------------------------------------------------------------------------------


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    return pins


def test_astro_base_image_is_pinned():
    lines = (ASTRO / "Dockerfile").read_text().splitlines()
    froms = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert len(froms) == 1, froms
    image, _, digest = froms[0].partition("@")
    name, _, tag = image.rpartition(":")
    assert name in {"astrocrpublic.azurecr.io/runtime", "quay.io/astronomer/astro-runtime"}
    # Astro Runtime for Airflow 3 is `<airflow major.minor>-<patch>`: exact, never floating.
    match = re.fullmatch(r"(3\.\d+)-\d+(-python-(3\.\d+))?", tag)
    assert match, f"{froms[0]}: not an exact Astro Runtime 3 version"
    assert not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    airflow = _constraints()["apache-airflow"]
    assert airflow.startswith(match[1] + "."), f"runtime {tag} is not Airflow {airflow}'s minor"
    runtime_python = next(
        line.split("=", 1)[1] for line in lines if line.startswith("ARG RUNTIME_PYTHON=")
    )
    assert match[3] in (None, runtime_python), "RUNTIME_PYTHON differs from the image's Python"


def test_astro_requirements_are_pinned_to_constraints():
    pins = _constraints()
    lines = [
        line.strip()
        for line in (ASTRO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    names = set()
    for line in lines:
        name, sep, version = line.partition("==")
        assert sep, f"{line!r} is not pinned with =="
        assert pins.get(name.lower()) == version, f"{line}: constraints.txt has {pins.get(name)}"
        names.add(name.lower())
    assert names >= ASTRO_PROVIDERS, f"missing providers: {ASTRO_PROVIDERS - names}"


def test_astro_entry_file_is_found_by_airflow_safe_mode():
    text = (ASTRO / "dags" / "tenants.py").read_text().lower()
    assert "airflow" in text and "dag" in text  # Airflow skips files without both words
    assert "build_dags" in text


def test_build_wheels_makes_the_project_wheel_and_the_tenants_copy(tmp_path: Path):
    subprocess.run(
        ["bash", str(ASTRO / "build_wheels.sh")],
        env={
            **os.environ,
            "ASTRO_OUT": str(tmp_path),
            "ASTRO_WHEELS_DEPS": "0",
            "ASTRO_COMPILE": "0",  # dag-factory dbt compile has tests of its own
            "PYTHON": str(REPO / ".venv" / "bin" / "python"),
        },
        check=True,
    )
    [wheel] = (tmp_path / "wheels").glob("tenant_runner-*-py3-none-any.whl")
    listing = zipfile.ZipFile(wheel).namelist()
    for module in ("dag_factory/build.py", "dag_factory/spec.py", "datakits/spec.py"):
        assert module in listing
    dockerfile = (ASTRO / "Dockerfile").read_text()
    python, arch = (tmp_path / "wheels" / "TARGET").read_text().split()
    assert f"ARG RUNTIME_PYTHON={python}\n" in dockerfile
    assert arch in {"x86_64", "aarch64"}
    copied = tmp_path / "include" / "warehouses"
    for file in WAREHOUSES.glob("*/warehouse.yaml"):
        assert (copied / file.relative_to(WAREHOUSES)).read_bytes() == file.read_bytes()
    assert (copied / "defaults.yaml").exists()
    assert not list(copied.rglob("target")), "dbt build output was copied into the image"


# --- airflow_settings.yaml ↔ the tenants ------------------------------------------------------


def _tenant_specs() -> list[Any]:
    report = Loader(WAREHOUSES).load_all(None)
    assert not report.errors, "\n".join(str(e) for e in report.errors)
    return [tenant.spec for tenant in report.tenants]


def _connection_ids(spec: Any) -> dict[str, str]:
    """Every Airflow connection id a tenant references → what it is for."""
    ids = {}
    for role in ("source", "warehouse"):
        conn = getattr(spec, role).connection.airflow_conn
        if conn:
            ids[conn] = role
    alerting = spec.alerting
    for targets in (alerting.on_failure, alerting.on_retry):
        if targets.slack is not None:
            ids[targets.slack.connection] = "slack"
        if targets.email:
            ids[alerting.smtp_connection] = "smtp"
    return ids


def test_airflow_settings_has_a_pool_per_tenant_and_no_other():
    settings = _load(ASTRO / "airflow_settings.yaml")["airflow"]
    pools = {pool["pool_name"] for pool in settings["pools"]}
    tenants = {file.parent.name for file in WAREHOUSES.glob("*/warehouse.yaml")}
    assert pools == {f"tenant_{tenant}" for tenant in tenants}
    assert all(pool["pool_slot"] >= 1 for pool in settings["pools"])
    assert not settings.get("variables"), "the DAG file reads no Airflow Variable"


def test_airflow_settings_has_every_tenant_connection_and_no_other():
    settings = _load(ASTRO / "airflow_settings.yaml")["airflow"]
    connections = {conn["conn_id"]: conn for conn in settings["connections"]}
    needed: dict[str, str] = {}
    for spec in _tenant_specs():
        needed |= _connection_ids(spec)
    assert set(needed) <= set(connections), f"missing: {sorted(set(needed) - set(connections))}"
    assert set(connections) <= set(needed), f"unused: {sorted(set(connections) - set(needed))}"
    for conn_id, role in needed.items():
        conn = connections[conn_id]
        if role in ("source", "warehouse"):  # the runner gets a SQLAlchemy URL from it
            connection_url(
                conn["conn_type"],
                host=conn.get("conn_host"),
                port=conn.get("conn_port"),
                login=conn.get("conn_login"),
                password=conn.get("conn_password"),
                schema=conn.get("conn_schema"),
            )


def test_airflow_settings_marks_every_password_local_only():
    for line in (ASTRO / "airflow_settings.yaml").read_text().splitlines():
        if re.match(r"\s*conn_password:\s*\S", line):
            assert "local-only" in line, f"unmarked password: {line.strip()}"
