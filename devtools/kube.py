"""A throwaway Kubernetes API server (etcd + kube-apiserver) owned by one test run.

No kubelet, no scheduler: a real API server that stores, validates, admits
and authorises what a client sends (RBAC, ServiceAccount admission, TokenRequest), for
code that talks to Kubernetes itself (Spark's scheduler backend creating executor pods).
Pods stay Pending unless the test plays the kubelet (tests/lakehouse/test_spark_k8s.py).
With a kube-controller-manager built too, its quota, garbage-collector and namespace
controllers run (ResourceQuota enforced, owned pods collected).

Debian ships no kube-apiserver binary; one is built from Debian's `kubernetes` source
package outside every git tree (/work/shared/STACK.md, "A real Kubernetes API server"),
and `KUBE_APISERVER` names it. etcd is Debian's `etcd-server`.

TLS with a CA made here by `openssl`, a static admin token (group `system:masters`) for
the test's own set-up, and service-account signing keys so that `token_for()` returns a
bound ServiceAccount token, as a pod's projected token volume would hold.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devtools.postgres import free_port
from devtools.processes import stop_processes

#: The kube-apiserver binary (a path); else `kube-apiserver` on PATH.
APISERVER_ENV = "KUBE_APISERVER"
#: Where `scripts/build-kube-apiserver.sh` (`make test-k8s`) builds it, looked at when
#: `KUBE_APISERVER` is unset.
DEFAULT_BUILD = Path(__file__).resolve().parents[1] / ".data" / "kube-build"
#: The kube-controller-manager (optional; else the one beside the apiserver, if built):
#: without it ResourceQuota status stays empty (quotas admit everything) and nothing
#: collects the pods whose owner is gone.
CONTROLLER_MANAGER_ENV = "KUBE_CONTROLLER_MANAGER"
#: The controllers it runs: no kubelet, no nodes, no scheduler here.
CONTROLLERS = "resourcequota,garbagecollector,namespace"
_ISSUER = "https://kubernetes.default.svc"


def apiserver_binary() -> str | None:
    """The kube-apiserver to run, or None (the caller skips, saying how to get one)."""
    named = os.environ.get(APISERVER_ENV)
    if named:
        return named if Path(named).is_file() else None
    found = shutil.which("kube-apiserver")
    if found:
        return found
    built = sorted(DEFAULT_BUILD.glob("kubernetes-*/_output/local/bin/linux/amd64/kube-apiserver"))
    return str(built[-1]) if built else None


def controller_manager_binary(apiserver: str) -> str | None:
    named = os.environ.get(CONTROLLER_MANAGER_ENV)
    beside = Path(apiserver).with_name("kube-controller-manager")
    found = named or (str(beside) if beside.is_file() else None)
    return found if found and Path(found).is_file() else None


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(folder: Path) -> None:
    """ca.{crt,key}; server.{crt,key} for 127.0.0.1/localhost; sa.{key,pub} (token keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n"
    )
    for command in (
        "genrsa -out ca.key 2048",
        "req -x509 -new -key ca.key -subj /CN=test-kube-ca -days 2 -out ca.crt",
        "genrsa -out server.key 2048",
        "req -new -key server.key -subj /CN=kube-apiserver -out server.csr",
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2"
        " -extfile san.ext -out server.crt",
        "genrsa -out sa.key 2048",
        "rsa -in sa.key -pubout -out sa.pub",
    ):
        _openssl(*command.split(), cwd=folder)


class KubeAPIServer:
    """etcd and kube-apiserver on 127.0.0.1; `client()` is the admin's kubernetes ApiClient."""

    def __init__(self, binary: str, root: Path | None = None) -> None:
        self.binary = binary
        self.root = root or Path(tempfile.mkdtemp(prefix="kube-apiserver-"))
        self._own_root = root is None
        self.port = free_port()
        self.admin_token = os.urandom(16).hex()
        self._procs: list[subprocess.Popen[bytes]] = []
        self.controllers = False

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "pki" / "ca.crt"

    def start(self, timeout: float = 90.0) -> KubeAPIServer:
        etcd = shutil.which("etcd")
        if etcd is None:
            raise RuntimeError("etcd not found: apt-get install etcd-server")
        pki = self.root / "pki"
        make_pki(pki)
        (self.root / "tokens.csv").write_text(f'{self.admin_token},admin,admin,"system:masters"\n')
        client, peer = free_port(), free_port()
        etcd_log = (self.root / "etcd.log").open("wb")
        self._procs.append(
            subprocess.Popen(
                [
                    etcd,
                    "--data-dir",
                    str(self.root / "etcd"),
                    "--listen-client-urls",
                    f"http://127.0.0.1:{client}",
                    "--advertise-client-urls",
                    f"http://127.0.0.1:{client}",
                    "--listen-peer-urls",
                    f"http://127.0.0.1:{peer}",
                    "--initial-advertise-peer-urls",
                    f"http://127.0.0.1:{peer}",
                    "--initial-cluster",
                    f"default=http://127.0.0.1:{peer}",
                ],
                stdout=etcd_log,
                stderr=subprocess.STDOUT,
            )
        )
        api_log = (self.root / "apiserver.log").open("wb")
        self._procs.append(
            subprocess.Popen(
                [
                    self.binary,
                    f"--etcd-servers=http://127.0.0.1:{client}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.port}",
                    "--insecure-port=0",
                    f"--cert-dir={self.root / 'certs'}",
                    f"--tls-cert-file={pki / 'server.crt'}",
                    f"--tls-private-key-file={pki / 'server.key'}",
                    f"--token-auth-file={self.root / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    f"--service-account-issuer={_ISSUER}",
                    f"--api-audiences={_ISSUER}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    "--service-cluster-ip-range=10.96.0.0/24",
                ],
                stdout=api_log,
                stderr=subprocess.STDOUT,
            )
        )
        self._wait_ready(timeout)
        self.controllers = self._start_controllers()
        return self

    def _start_controllers(self) -> bool:
        """The controller-manager, if one is built, with the admin's kubeconfig."""
        binary = controller_manager_binary(self.binary)
        if binary is None:
            return False
        kubeconfig = self.root / "admin.kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {
                                "server": self.url,
                                "certificate-authority": str(self.ca_file),
                            },
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": self.admin_token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
                    "current-context": "test",
                }
            )
        )
        log = (self.root / "controller-manager.log").open("wb")
        self._procs.append(
            subprocess.Popen(
                [
                    binary,
                    f"--kubeconfig={kubeconfig}",
                    f"--controllers={CONTROLLERS}",
                    "--leader-elect=false",
                    "--port=0",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                    f"--cert-dir={self.root / 'cm-certs'}",
                    "--resource-quota-sync-period=5s",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        return True

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(  # noqa: S310 - https, our own server
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        deadline = time.monotonic() + timeout
        while True:
            for proc in self._procs:
                if proc.poll() is not None:
                    log = (self.root / "apiserver.log").read_text(errors="replace")[-2000:]
                    self.stop()
                    raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {log}")
            try:
                with urllib.request.urlopen(request, timeout=2, context=context) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"kube-apiserver not ready on {self.url} in {timeout:.0f} s")
            time.sleep(0.5)

    def client(self, token: str | None = None) -> Any:
        """A `kubernetes.client.ApiClient` with `token` (the admin's by default)."""
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        config.ssl_ca_cert = str(self.ca_file)
        config.api_key = {"BearerToken": token or self.admin_token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
        return client.ApiClient(config)

    def tenant_namespace(self, namespace: str, service_account: str) -> str:
        """Namespace + its `default` and `service_account` ServiceAccounts (no controller
        creates them here), the Role a Spark driver needs (executor pods and their config
        maps), bound to `service_account`; returns a bound token of that account."""
        from kubernetes import client

        api = self.client()
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        core.create_namespace({"metadata": {"name": namespace}})
        for name in ("default", service_account):
            core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        verbs = ["get", "list", "watch", "create", "delete", "deletecollection", "patch"]
        rules = [
            {"apiGroups": [""], "resources": ["pods", "configmaps", "services"], "verbs": verbs},
            {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": verbs},
        ]
        rbac.create_namespaced_role(
            namespace, {"metadata": {"name": "spark-driver"}, "rules": rules}
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "spark-driver"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "spark-driver",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
                ],
            },
        )
        return self.token_for(namespace, service_account)

    def token_for(self, namespace: str, service_account: str) -> str:
        """A bound ServiceAccount token (TokenRequest), what a pod's projected volume holds."""
        from kubernetes import client

        answer = client.CoreV1Api(self.client()).create_namespaced_service_account_token(
            service_account,
            namespace,
            {"spec": {"audiences": [_ISSUER], "expirationSeconds": 7200}},
        )
        return str(answer.status.token)

    def stop(self) -> None:
        stop_processes(reversed(self._procs))
        self._procs.clear()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
