"""A stand-in kubelet: runs the pods a test's API server receives as local processes.

There is no container runtime to give a real kubelet here, so this plays its part for
one namespace: it watches the pods (those matching a label selector), resolves each
one's container the way the image would run it (the image's ENTRYPOINT and ENV, read
from the Dockerfile stage the pod's image is built from; the pod's command/args and env
over them; downward-API fields filled in, each pod an IP of its own on loopback), starts it as a
process, and reports it back to the API server through the pod's status subresource
(Running, then Succeeded/Failed with the exit code), as a kubelet does. A pod deleted
through the API has its process terminated.

What it does not do: users, read-only root filesystems, volumes and resource limits
(the process runs as the test's user on this machine's filesystem); the tests check
the pod spec for those instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Pod IPs: one loopback address each (Linux routes all of 127.0.0.0/8 to `lo`), so a
#: process bound to its pod's IP is not reachable at another's, as on a pod network.
POD_NETWORK = "127.0.0."
#: The node's (host) IP.
HOST_IP = "127.0.0.1"


@dataclass(frozen=True)
class ImageConfig:
    """What `docker run` takes from an image: its ENTRYPOINT, CMD and ENV."""

    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]


def dockerfile_image(dockerfile: Path, target: str) -> ImageConfig:
    """The ENTRYPOINT, CMD and ENV of stage `target`, inherited through its FROM chain.

    Enough of the Dockerfile grammar for ours: `FROM x AS y`, `ENV k=v ...` (line
    continuations, shell quoting) and the exec (JSON) forms of ENTRYPOINT and CMD."""
    text = dockerfile.read_text().replace("\\\n", " ")
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else parts[0]
            current = {"parent": parts[0], "env": {}, "entrypoint": None, "cmd": None}
            stages[name] = current
        elif current is None:
            continue
        elif word == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                current["env"][key] = value
        elif word in ("ENTRYPOINT", "CMD"):
            current[word.lower()] = json.loads(rest)
    if target not in stages:
        raise ValueError(f"{dockerfile} has no stage {target!r}")
    chain = []
    name: str | None = target
    while name in stages:
        chain.append(stages[name])
        name = stages[name]["parent"]
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    for stage in reversed(chain):
        env.update(stage["env"])
        if stage["entrypoint"] is not None:
            entrypoint, cmd = stage["entrypoint"], []
        if stage["cmd"] is not None:
            cmd = stage["cmd"]
    return ImageConfig(entrypoint, cmd, env)


@dataclass
class RanPod:
    """One pod this kubelet ran: the pod as first seen, its argv and env, its process."""

    pod: dict[str, Any]
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes]
    deleted: bool = False
    exit_code: int | None = None


@dataclass
class LocalKubelet:
    """Watch `namespace` for pods matching `selector`; run each with `images[pod image]`.

    `paths`: image path prefixes → local ones (e.g. the image's /opt/venv → this venv),
    applied to the command and env values, since the process runs outside the image."""

    api: Any  # kubernetes.client.ApiClient
    namespace: str
    selector: str
    images: dict[str, ImageConfig]
    work: Path
    paths: dict[str, str] = field(default_factory=dict)
    pods: dict[str, RanPod] = field(default_factory=dict)
    ips: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> LocalKubelet:
        thread = threading.Thread(target=self._watch, name="local-kubelet", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _watch(self) -> None:
        from kubernetes import client, watch

        core = client.CoreV1Api(self.api)
        version = ""
        while not self._stop.is_set():
            try:
                stream = watch.Watch().stream(
                    core.list_namespaced_pod,
                    self.namespace,
                    label_selector=self.selector,
                    resource_version=version or None,
                    timeout_seconds=2,
                )
                for event in stream:
                    obj = self.api.sanitize_for_serialization(event["object"])
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "ADDED":
                        self._run(core, obj)
                    elif event["type"] == "DELETED":
                        self._kill(obj["metadata"]["name"])
            except Exception as exc:
                if not self._stop.is_set():
                    self.errors.append(f"watch: {exc!r}"[:500])
                version = ""

    def _resolve(self, pod: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """argv and env of the pod's first container, as the image would start it."""
        container = pod["spec"]["containers"][0]
        image = self.images.get(container["image"])
        if image is None:
            raise ValueError(f"no image {container['image']!r} known to this kubelet")
        # Kubernetes: `command` replaces ENTRYPOINT (and CMD), `args` replaces CMD
        command = container.get("command")
        args = container.get("args")
        argv = (command if command else image.entrypoint) + (
            args if args is not None else ([] if command else image.cmd)
        )
        env = dict(image.env)
        for var in container.get("env") or []:
            env[var["name"]] = self._env_value(pod, var)
        if container.get("envFrom"):
            raise ValueError("envFrom is not supported by this kubelet")
        env = {k: self._local(v) for k, v in env.items()}
        return [self._local(a) for a in argv], env

    def _env_value(self, pod: dict[str, Any], var: dict[str, Any]) -> str:
        if "value" in var:
            return str(var.get("value") or "")
        source = var.get("valueFrom") or {}
        ref = source.get("fieldRef")
        if ref is None:
            raise ValueError(f"env {var['name']}: only value and fieldRef are supported")
        fields = {
            "status.podIP": self.ip(pod["metadata"]["name"]),
            "status.hostIP": HOST_IP,
            "status.podIPs": self.ip(pod["metadata"]["name"]),
            "metadata.name": pod["metadata"]["name"],
            "metadata.namespace": pod["metadata"]["namespace"],
            "metadata.uid": pod["metadata"]["uid"],
            "spec.nodeName": "local-kubelet",
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName") or "default",
        }
        return fields[ref["fieldPath"]]

    def ip(self, pod_name: str) -> str:
        """The pod's IP: the next free loopback address from 127.0.0.10."""
        with self._lock:
            if pod_name not in self.ips:
                self.ips[pod_name] = f"{POD_NETWORK}{10 + len(self.ips)}"
            return self.ips[pod_name]

    def _local(self, value: str) -> str:
        for image_path, local in self.paths.items():
            value = value.replace(image_path, local)
        return value

    def _run(self, core: Any, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        with self._lock:
            if name in self.pods:
                return
        try:
            argv, env = self._resolve(pod)
        except (ValueError, KeyError) as exc:
            self.errors.append(f"{name}: {exc}")
            return
        folder = self.work / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pod.json").write_text(json.dumps(pod, indent=1))  # as the API gave it
        log = folder / "container.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ran = RanPod(pod, argv, env, log, proc)
        with self._lock:
            self.pods[name] = ran
        self._status(core, pod, running=True)
        waiter = threading.Thread(target=self._reap, args=(core, ran), daemon=True)
        waiter.start()
        self._threads.append(waiter)

    def report_running(self, pod: dict[str, Any]) -> None:
        """Report a pod this kubelet does not run as Running and Ready (the test's own
        process is its container, e.g. the Spark driver)."""
        from kubernetes import client

        self._status(client.CoreV1Api(self.api), pod, running=True)

    def _reap(self, core: Any, ran: RanPod) -> None:
        ran.exit_code = ran.proc.wait()
        if not ran.deleted:
            self._status(core, ran.pod, running=False, exit_code=ran.exit_code)

    def _status(self, core: Any, pod: dict[str, Any], *, running: bool, exit_code: int = 0) -> None:
        from kubernetes.client.exceptions import ApiException

        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        container = pod["spec"]["containers"][0]
        if running:
            phase, state = "Running", {"running": {"startedAt": now}}
        else:
            phase = "Succeeded" if exit_code == 0 else "Failed"
            state = {"terminated": {"exitCode": exit_code, "finishedAt": now}}
        ip = self.ip(pod["metadata"]["name"])
        body = {
            "status": {
                "phase": phase,
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "hostIP": HOST_IP,
                "startTime": now,
                "conditions": [{"type": "Ready", "status": str(running)}],
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "image": container["image"],
                        "imageID": "",
                        "ready": running,
                        "restartCount": 0,
                        "state": state,
                    }
                ],
            }
        }
        try:
            core.patch_namespaced_pod_status(pod["metadata"]["name"], self.namespace, body)
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report to
                self.errors.append(f"status of {pod['metadata']['name']}: {exc.status}")

    def _kill(self, name: str) -> None:
        with self._lock:
            ran = self.pods.get(name)
        if ran is None:
            return
        ran.deleted = True
        if ran.proc.poll() is None:
            os.killpg(ran.proc.pid, signal.SIGTERM)
            try:
                ran.proc.wait(timeout=30)  # the pod's default grace period
            except subprocess.TimeoutExpired:
                os.killpg(ran.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop watching; terminate every process still running."""
        self._stop.set()
        for name in list(self.pods):
            self._kill(name)
        for thread in self._threads:
            thread.join(timeout=35)


def venv_paths() -> dict[str, str]:
    """The runner images' /opt/venv is this interpreter's virtualenv here."""
    return {"/opt/venv": sys.prefix}
