# The two set-up commands of the README; each installs what it needs first.
.PHONY: setup demo test templates clean
PY := .venv/bin/python

setup:
	@bash tools/setup-env.sh

demo: setup
	@$(PY) -m executor demo

test: setup
	@$(PY) -m pytest -q

templates: setup
	@$(PY) -m executor templates

clean:
	rm -rf workspace/demo .pytest_cache
