"""`runner dbt --docs-out DIR … docs generate`: keep dbt's docs site after the run.

The runner runs dbt in a temp dir that is gone when it exits, so the site dbt writes
into its target dir is copied out first: the files a static host serves
(`index.html` + `manifest.json` + `catalog.json`, and `static_index.html`, one file with
both inlined, when `--static` is given) and the project's asset folders. Compiled SQL,
partial-parse state and logs stay behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from datakits.errors import ConfigError

#: What dbt's docs site is made of, in its target dir.
SITE_FILES = ("index.html", "static_index.html", "manifest.json", "catalog.json")
#: dbt's own folders in the target dir: never part of the site.
_NOT_ASSETS = frozenset({"compiled", "run"})


def check_docs_command(dbt_args: list[str]) -> None:
    """`--docs-out` only makes sense for `docs generate`: anything else is a ConfigError."""
    if dbt_args[:2] != ["docs", "generate"]:
        raise ConfigError(
            f"--docs-out keeps the docs site of `docs generate`, not of `{' '.join(dbt_args[:2])}`"
        )


def copy_site(target: Path, out: Path) -> list[str]:
    """Copy the docs site from dbt's `target` dir to `out` (created); the names copied."""
    if not (target / "index.html").is_file():
        raise ConfigError(f"dbt wrote no docs site in {target}: `docs generate` did not finish")
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in SITE_FILES:
        if (target / name).is_file():
            shutil.copyfile(target / name, out / name)
            copied.append(name)
    for folder in sorted(p for p in target.iterdir() if p.is_dir()):
        if folder.name not in _NOT_ASSETS:  # the project's asset-paths (images, ...)
            shutil.copytree(folder, out / folder.name, dirs_exist_ok=True)
            copied.append(folder.name + "/")
    return copied
