"""A cache of validated tenant specs on disk, keyed by the content that made them.

Airflow's DAG processor parses the DAG file in a fresh process again and again; without
a cache every parse would re-read and re-validate every tenant. The key is a hash of the
defaults file, the tenant file's path and text, and the spec models' own source, so an
edited file, an edited default or a new version of the models is validated again.

Entries are pickles of the validated models, in a directory only the current user can
write (0700): nothing else may be trusted to write there.
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
        if self.dir is None:
            return None
        try:
            spec = pickle.loads((self.dir / key).read_bytes())  # noqa: S301 (our own 0700 dir)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None
        return spec if isinstance(spec, TenantSpec) else None

    def put(self, key: str, spec: TenantSpec) -> None:
        if self.dir is None:
            return
        tmp = self.dir / f".{key}.{os.getpid()}"
        try:
            tmp.write_bytes(pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))
            tmp.replace(self.dir / key)  # atomic: a concurrent reader sees all or nothing
        except OSError:
            tmp.unlink(missing_ok=True)
