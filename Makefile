# The two set-up commands of the README; each installs what it needs first.
.PHONY: setup demo test templates image image-test clean
PY := .venv/bin/python

setup:
	@bash tools/setup-env.sh

demo: setup
	@$(PY) -m executor demo

test: setup
	@$(PY) -m pytest -q

templates: setup
	@$(PY) -m executor templates

# The CPU variant of the image, offline, one tag per kind (needs podman and mmdebstrap: README).
image: setup
	@bash tools/build-image.sh

# The built image run the way the platform runs it, for every kind (not part of CI).
image-test: setup
	@$(PY) tools/image-test.py

clean:
	rm -rf workspace/demo .pytest_cache
