# The two commands of the README. `make demo` sets up and runs the main job on the local platform;
# `make test` runs every test (it brings the platform up itself if it is not running).
.PHONY: setup demo test lint down

# Installed packages are compiled to bytecode once, at install: every flow run is a new Python
# process, and without .pyc files (PYTHONDONTWRITEBYTECODE, a read-only venv) each one compiles
# Prefect, kubernetes and the rest again, seconds of CPU per run.
export UV_COMPILE_BYTECODE := 1

setup:
	@command -v uv >/dev/null || python3 -m pip install -q "uv==0.13.9"
	uv sync --frozen

demo: setup
	uv run python -m sandbox.demo

test: setup
	uv run pytest

lint: setup
	uv run ruff check . && uv run ruff format --check .

down:
	uv run python -m sandbox.demo stop
	uv run sandbox down
