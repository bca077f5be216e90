# The two set-up commands of the README; each installs what it needs first.
.PHONY: setup demo test templates image image-test clean
PY := .venv/bin/python

setup:
	@bash tools/setup-env.sh

demo: setup
	@$(PY) -m executor demo

# Two workers (a test file each): the suite is mostly single-threaded imports and subprocesses.
test: setup
	@$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

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
