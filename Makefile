# make demo: grade the bundled sample submissions. make test: the kit's own tests.
# Both build .venv/ from requirements.txt when it is missing.
VENV := .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
STAMP := $(VENV)/.installed
# nbgrader runs alembic from PATH when it creates a gradebook
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/coursekit demo

test: $(STAMP)
	$(VENV)/bin/pytest

# coursekit verify --mutants on every assignment: mutants made/killed/equivalent and time (target < 10 min each); then
# two kernels side by side with torch's default threads and with the grader's (about 1 minute); then
# a kernel's start and stop with jupyter_client's fixed waits and without them (about 1 minute); then
# coursekit grade against plain nbgrader autograde; prints figures (about 20 minutes); then
# coursekit similarity on a class of 500 (about 2 minutes, most of it writing the classes); then
# nbgrader's own tests, stock and with the kit's pipeline injected (about 15 minutes; make test runs a subset)
bench: $(STAMP)
	$(VENV)/bin/python bench/mutants.py
	$(VENV)/bin/python bench/kernel_threads.py
	$(VENV)/bin/python bench/kernel_start.py
	$(VENV)/bin/python bench/grading.py
	$(VENV)/bin/python bench/similarity.py
	$(VENV)/bin/python bench/nbgrader_suite.py

clean:
	rm -rf submitted autograded feedback reports downloaded bundles exchange gradebook.db
