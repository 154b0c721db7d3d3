# Two set-up commands (see README): `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
FACEGEN := $(VENV)/bin/facegen
DEMO_OUT ?= demo_out

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" "setuptools>=69" wheel
	$(PY) -m pip install --quiet -e ".[test,cluster]"
	touch $@

# Imports the face model (once; cached in $FACEGEN_HOME), renders a small dense490 set with the raster
# and the Cycles backends, and writes previews.
demo: install
	$(FACEGEN) assets import-ict
	$(FACEGEN) specs preview dense490 -o $(DEMO_OUT)/spec-dense490.png
	$(FACEGEN) render --spec dense490 --n 64 --size 256 --shard-size 32 --workers 1 --renderer raster --out $(DEMO_OUT)/dense490
	$(FACEGEN) inspect $(DEMO_OUT)/dense490
	$(FACEGEN) preview $(DEMO_OUT)/dense490 -o $(DEMO_OUT)/preview-dense490.png --n 16 --cols 4
	$(FACEGEN) render --spec dense490 --n 8 --size 256 --shard-size 8 --renderer cycles --outputs rgb,segmentation --out $(DEMO_OUT)/dense490-cycles
	$(FACEGEN) preview $(DEMO_OUT)/dense490-cycles -o $(DEMO_OUT)/preview-dense490-cycles.png --n 8 --cols 4 --segmentation
	@echo "demo: spec preview $(DEMO_OUT)/spec-dense490.png; rendered samples $(DEMO_OUT)/preview-dense490.png (raster)"
	@echo "      and $(DEMO_OUT)/preview-dense490-cycles.png (Cycles, the default renderer, with segmentation)"

bench: install
	$(PY) bench/render_throughput.py

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .cache
