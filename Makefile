# crowdsight — one command to run, one command to test. See README.md.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: setup models run demo analyze check-input test lint typecheck bench clean

$(BIN)/crowdsight: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/crowdsight          ## create .venv and install crowdsight with test tools

models: setup                      ## download, verify and convert the pinned models
	bash scripts/ensure_npm.sh
	$(BIN)/crowdsight models install

run: models                        ## start the service (SQLite, no cameras) + dashboard
	$(BIN)/crowdsight serve --host $(HOST) --port $(PORT)

demo: models                       ## the service with a demo camera (needs ../shared/data)
	$(BIN)/crowdsight serve --config examples/serve.yaml --host $(HOST) --port $(PORT)

analyze: check-input models        ## make analyze INPUT=video.mp4 OUT=out/
	$(BIN)/crowdsight analyze "$(INPUT)" --out "$(or $(OUT),out)"

check-input:
	@test -n "$(INPUT)" || { echo "make analyze needs INPUT: make analyze INPUT=video.mp4 [OUT=out/] (an image, video, folder of frames or folder of videos)" >&2; exit 2; }

test:                              ## set up everything and run the whole test suite
	bash scripts/test.sh

lint: setup
	$(BIN)/ruff check crowdsight tests benchmarks
	$(BIN)/ruff format --check crowdsight tests benchmarks

typecheck: setup
	$(BIN)/mypy crowdsight

bench: models
	$(BIN)/python benchmarks/density.py
	$(BIN)/crowdsight bench --json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache out
