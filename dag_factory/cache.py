"""A cache of validated tenant specs on disk, keyed by the content that made them.

Airflow's DAG processor parses the DAG file in a fresh process again and again; without
a cache every parse would re-read and re-validate every tenant. The key is a hash of the
defaults file, the tenant file's path and text, and the spec models' own source, so an
edited file, an edited default or a new version of the models is validated again.

Entries are pickles of the validated models, in a directory only the current user can
write (0700): nothing else may be trusted to write there. An entry that cannot be read
back (truncated, garbage, written by other models) is a miss, never an error: the
spec is validated again and the entry rewritten.

Besides the entries by content, the cache keeps each tenant file's *last valid* spec
(`get_last_valid`), keyed by the file's path: when the file turns invalid, its
placeholder DAG keeps the schedule and alerting the tenant last had.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

from dag_factory import spec as tenant_spec_module
from dag_factory.spec import TenantSpec
from datakits import spec as load_spec_module

#: Where the cache lives; set it empty to switch the cache off.
CACHE_DIR_ENV = "DAG_FACTORY_CACHE_DIR"


def _models_fingerprint() -> str:
    digest = hashlib.sha256()
    for module in (load_spec_module, tenant_spec_module):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


class SpecCache:
    def __init__(self, directory: Path | None) -> None:
        self.dir = directory
        self._fingerprint = _models_fingerprint() if directory else ""
        if directory is not None:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if directory.stat().st_uid != os.getuid() or directory.stat().st_mode & 0o022:
                self.dir = None  # someone else could write here: do not trust it

    @classmethod
    def from_env(cls) -> SpecCache:
        configured = os.environ.get(CACHE_DIR_ENV)
        if configured == "":
            return cls(None)
        default = Path(tempfile.gettempdir()) / f"dag_factory-cache-{os.getuid()}"
        return cls(Path(configured) if configured else default)

    def key(self, *parts: str) -> str:
        return hashlib.sha256("\0".join((self._fingerprint, *parts)).encode()).hexdigest()

    def get(self, key: str) -> TenantSpec | None:
        """The spec stored under `key`; None when absent or unreadable in any way."""
        if self.dir is None:
            return None
        try:
            spec = pickle.loads((self.dir / key).read_bytes())  # noqa: S301 (our own 0700 dir)
        except Exception:
            return None
        return spec if isinstance(spec, TenantSpec) else None

    def _pointer(self, file: Path) -> Path | None:
        if self.dir is None:
            return None
        return self.dir / ("last-" + self.key("last valid", str(Path(file).resolve())))

    def get_last_valid(self, file: Path) -> TenantSpec | None:
        """The spec `file` last validated to (in any process sharing this cache), if its
        entry is still there."""
        pointer = self._pointer(file)
        try:
            key = pointer.read_text(encoding="ascii").strip() if pointer else ""
        except (OSError, ValueError):
            return None
        return self.get(key) if len(key) == 64 and key.isalnum() else None

    def set_last_valid(self, file: Path, key: str) -> None:
        """Record that `file` last validated to the entry `key` (written only on change)."""
        pointer = self._pointer(file)
        if pointer is None:
            return
        try:
            if pointer.read_text(encoding="ascii") == key:
                return
        except (OSError, ValueError):
            pass
        self._write(pointer, key.encode("ascii"))

    def put(self, key: str, spec: TenantSpec) -> None:
        if self.dir is None:
            return
        self._write(self.dir / key, pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        try:
            tmp.write_bytes(data)
            tmp.replace(target)  # atomic: a concurrent reader sees all or nothing
        except OSError:
            tmp.unlink(missing_ok=True)
