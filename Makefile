# The two quickstart commands: `make run` (install + the main job) and `make test`.
TASK ?= Write a Python script hello.py that prints Hello from Spud! and then run python3 hello.py to check it.
WORKSPACE ?= demo-workspace

.PHONY: setup run test lint bench

setup:
	./scripts/setup.sh

run: setup
	mkdir -p $(WORKSPACE)
	.venv/bin/spud run "$(TASK)" --workspace $(WORKSPACE) --yes

test: setup
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src tests bench

bench: setup
	.venv/bin/python bench/llm_bench.py
	.venv/bin/python bench/office_bench.py
	.venv/bin/python bench/browser_bench.py
	.venv/bin/python bench/server_bench.py
