"""devtools.shop: the demo shop's source data is deterministic and complete."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from devtools.shop import STATUSES, generate_shop, main

TABLES = ("customers", "products", "orders", "order_items")


def _dump(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}


def test_same_seed_gives_the_same_rows(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "c.sqlite"
    assert generate_shop(f"sqlite:///{a}", orders=300) == generate_shop(
        f"sqlite:///{b}", orders=300
    )
    generate_shop(f"sqlite:///{c}", orders=300, seed=8)
    assert _dump(a) == _dump(b)
    assert _dump(a)["orders"] != _dump(c)["orders"]


def test_counts_keys_and_values(tmp_path: Path) -> None:
    db = tmp_path / "shop.sqlite"
    counts = generate_shop(f"sqlite:///{db}", orders=400)
    assert counts["customers"] == 2_000
    assert counts["products"] == 200
    assert counts["orders"] == 400
    assert 400 <= counts["order_items"] <= 1_600
    rows = _dump(db)
    assert {t: len(r) for t, r in rows.items()} == counts
    with sqlite3.connect(db) as conn:
        statuses = {s for (s,) in conn.execute("SELECT DISTINCT status FROM orders")}
        orphans = conn.execute(
            "SELECT count(*) FROM order_items i LEFT JOIN orders o USING (order_id)"
            " WHERE o.order_id IS NULL"
        ).fetchone()[0]
        per_order = conn.execute(
            "SELECT min(n), max(n) FROM (SELECT count(*) n FROM order_items GROUP BY order_id)"
        ).fetchone()
        bad_times = conn.execute(
            "SELECT count(*) FROM orders WHERE updated_at < ordered_at"
        ).fetchone()[0]
    assert statuses <= set(STATUSES)
    assert orphans == 0
    assert per_order[0] >= 1 and per_order[1] <= 4
    assert bad_times == 0


def test_rerun_recreates_the_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    generate_shop(url, orders=200)
    assert generate_shop(url, orders=100)["orders"] == 100
    assert len(_dump(tmp_path / "shop.sqlite")["orders"]) == 100


def test_sqlite_has_no_schemas(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schemas"):
        generate_shop(f"sqlite:///{tmp_path / 's.sqlite'}", orders=1, schema="bronze")


def test_cli_creates_parent_dirs_and_prints_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "deep" / "er" / "shop.sqlite"
    main(["--url", f"sqlite:///{db}", "--orders", "50", "--seed", "3"])
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts["orders"] == 50
    assert db.is_file()
