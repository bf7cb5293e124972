# Task runner for trio_resilience. `just --list` shows the recipes.

# Run the whole test suite (the README's test command).
test *args:
    python -m pytest {{args}}

# Lint: ruff check, ruff format --check and mypy --strict on the package.
lint:
    ruff check trio_resilience tests benchmarks examples
    ruff format --check trio_resilience tests benchmarks examples
    mypy --strict trio_resilience

# Serve the test server on 127.0.0.1:8000 in the foreground (flags: see --help).
serve *args:
    python -m trio_resilience serve {{args}}

# Format the code in place.
fmt:
    ruff format trio_resilience tests benchmarks examples
    ruff check --fix trio_resilience tests benchmarks examples

# Every benchmark with its baseline; writes benchmarks/results/latest.{json,md,png}.
# `just bench --quick` finishes in under two minutes and writes quick.{json,md,png}
# there instead, leaving the committed latest.* alone. Needs the `bench` extra.
bench *args:
    python benchmarks/run.py {{args}}

# One benchmark, with its own flags (see benchmarks/README.md).
bench-primitives *args:
    python benchmarks/bench_primitives.py {{args}}

bench-server *args:
    python benchmarks/bench_server.py {{args}}

bench-client *args:
    python benchmarks/bench_client.py {{args}}

bench-jobs *args:
    python benchmarks/bench_jobs.py {{args}}
