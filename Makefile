# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
UV_VERSION := 0.13.9
DATA := $(CURDIR)/.data
DEMO := $(DATA)/demo
DEMO_ORDERS ?= 100000

# Airflow runs from a folder of its own under .data/, with the repository's dags/.
AIRFLOW_ENV := AIRFLOW_HOME=$(DEMO)/airflow \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__UNIT_TEST_MODE=False \
	DAG_FACTORY_TENANTS=demo \
	DEMO_SOURCE_URL=sqlite:///$(DEMO)/shop.sqlite \
	DEMO_WAREHOUSE_URL=duckdb:///$(DEMO)/warehouse.duckdb

.PHONY: help install services demo ui test test-fast test-k8s lint clean platform-up platform-down astro-wheels images base-image bench-deps bench

help:
	@echo "make demo   set up everything, run the demo tenant end to end (SQLite → DuckDB)"
	@echo "make ui     the tenants of warehouses/ in a local Airflow (UI + scheduler) until Ctrl-C"
	@echo "make test   set up everything, run ruff, the import contracts and pytest"
	@echo "make test-fast [ARGS=…]  the same without tests that start a server or build dbt (< 1 min)"
	@echo "make clean  remove .venv and .data"
	@echo "make platform-up / platform-down   Traefik + registry for the laptop path"
	@echo "make astro-wheels                  wheels and tenants for the Astro image"
	@echo "make images [REGISTRY=… BASE_IMAGE=…]  build and push the runner and tenant images"

# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is
# set nothing else does, so every process would compile its imports again (a runner's
# start-up: 2.2-2.5 s instead of 1.2 s; Airflow's several seconds more per process).
# compileall: the same for this (editable) project's own modules, which uv leaves out:
# ~30 ms of every `runner extract` (its 30 modules compiled from source each time).
$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt --compile-bytecode \
		--only-binary dbt-core-experimental-parser -e '.[dbt,airflow,dev,spark]'
	$(BIN)/python -m compileall -q datakits runners dag_factory devtools
	touch $@

install: $(INSTALLED)

# System packages the test run needs (the PostgreSQL server); a no-op when present.
services:
	scripts/install-services.sh

demo: install
	@mkdir -p $(DEMO)
	$(BIN)/python -m devtools.shop --url sqlite:///$(DEMO)/shop.sqlite --orders $(DEMO_ORDERS)
	rm -f $(DEMO)/warehouse.duckdb
	$(AIRFLOW_ENV) $(BIN)/airflow db migrate > $(DEMO)/airflow-migrate.log 2>&1
	$(AIRFLOW_ENV) $(BIN)/dag-factory pools
	$(AIRFLOW_ENV) $(BIN)/dag-factory dbt compile demo
	$(AIRFLOW_ENV) $(BIN)/airflow dags test tenant_demo > $(DEMO)/dags-test.log 2>&1 \
		|| { tail -40 $(DEMO)/dags-test.log; exit 1; }
	$(AIRFLOW_ENV) $(BIN)/python -m devtools.report demo

# A real local Airflow (airflow standalone: scheduler, dag-processor, triggerer, API server)
# on .data/ui/: demo data generated, `dag-factory dbt compile` run (each tenant's DAG then has
# one task per dbt model), `dag-factory pools` run, ACME's connections pointing at a throwaway
# PostgreSQL. Prints the URL; Ctrl-C stops every process it started.
UI_PORT ?= 8080
ui: install
	$(BIN)/python -m devtools.airflow_server ui --data $(DATA)/ui --port $(UI_PORT) \
		--orders $(DEMO_ORDERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: install services lint
	$(BIN)/pytest

# What a contributor waits for: lint and every test that starts no server and runs no whole
# dbt build (`dbt`: the modules in tests/conftest.py DBT_MODULES). The server marks are
# derived from each test's fixtures (tests/conftest.py); ARGS narrows it (paths, -k, -x).
FAST_MARKS := not (postgres or mariadb or docker or airflow or browser or prometheus or s3 or spark or dbt)

# Two workers, a test file each at a time (module fixtures stay shared): on this 2-core
# machine, quiet, 52 s against 90 s serial. `make test` stays serial (its servers and ports).
test-fast: lint
	$(BIN)/pytest -n 2 --dist loadfile -m "$(FAST_MARKS)" $(ARGS)

# Spark's executor pods for real against a kube-apiserver (Debian's source package, built
# once into .data/kube-build, ~10 min on 2 cores): not in `make test`, whose CI budget it
# would take a third of; the test skips there, saying how to run it.
test-k8s: install services
	scripts/build-kube-apiserver.sh $(DATA)/kube-build
	$(BIN)/pytest tests/lakehouse/test_spark_k8s.py $(ARGS)

clean:
	rm -rf $(VENV) $(DATA)

# Runner images (runners/docker/): the datakit and dbt base images (no tenant files), tagged
# with the version and the git sha, and the Spark image when a tenant runs dbt.engine: spark;
# then one dbt image per tenant (FROM dbt, or spark), its project only, tagged
# by a hash of its compiled inputs and base image (built and pushed only when the registry lacks that tag).
# `dag-factory dbt compile` first: its graph files name each tenant's project and hash.
# Public images cannot be pulled on our machines: `make base-image` builds a local one
# (debootstrap), then `make images BASE_IMAGE=local/debian-python:bookworm`.
REGISTRY ?= registry.localhost
BASE_IMAGE ?= python:3.11-slim-bookworm

images: install
	$(BIN)/dag-factory dbt compile
	$(BIN)/python -m runners.build_images --registry $(REGISTRY) --base-image $(BASE_IMAGE) --push

base-image: install services
	$(BIN)/python -m devtools.docker base-image

# The local platform (docs/local-platform.md): Traefik + registry on the external `edge` network.
COMPOSE ?= docker compose

platform-up:
	test -f traefik/certs/localhost.crt || traefik/make-certs.sh
	docker network create edge || true
	$(COMPOSE) -f traefik/docker-compose.yml up -d

platform-down:
	$(COMPOSE) -f traefik/docker-compose.yml down
	docker network rm edge || true

# What the Astro image takes from this repository: wheels and the tenants' files.
astro-wheels: install
	astro/build_wheels.sh

# Benchmarks (not part of `make test`): baseline packages pinned, then the scripts.
BENCH_ROWS ?= 1000000
BENCH_TENANTS ?= 1000

bench-deps: install
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt --compile-bytecode \
		-r benchmarks/requirements.txt -r benchmarks/requirements-dag-parse.txt \
		-r benchmarks/requirements-dbt-dag.txt

bench: bench-deps services
	$(BIN)/python benchmarks/extract_load.py --rows $(BENCH_ROWS) --repeat 3
	$(BIN)/python benchmarks/dag_parse.py --tenants $(BENCH_TENANTS) --repeat 3
	$(BIN)/python benchmarks/dbt_dag.py --models 200 --tenants 100 --repeat 3
