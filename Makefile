# stream-ser: `make listen` and `make test` are all a fresh clone needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup listen test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@# sounddevice's Linux wheels do not bundle PortAudio: install it where we can
	@if [ "$$(uname)" = Linux ] && ! ldconfig -p 2>/dev/null | grep -q libportaudio; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libportaudio2 >/dev/null; \
	  else echo "note: install PortAudio for live input (e.g. sudo apt-get install libportaudio2)"; fi; \
	fi
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

listen: setup
	$(BIN)/stream-ser listen

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
