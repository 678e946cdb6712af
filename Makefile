# Two commands do everything on a fresh machine:
#   make demo   creates .venv, installs, starts the embedded broker and a worker, runs sample requests
#   make test   the whole suite (installs what it needs, Debian packages included)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test up index clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# apt_install PACKAGES: install the Debian packages that are missing (apt-get update first, once)
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
endef

DEBS := python3.11-doc tesseract-ocr tesseract-ocr-eng wordnet-base

demo: install
	-$(call apt_install,$(DEBS))
	$(BIN)/conveyor demo

test: install
	$(call apt_install,$(DEBS) prometheus)
	$(BIN)/python -m pytest

up: install
	$(BIN)/conveyor up

index: install
	-$(call apt_install,python3.11-doc)
	$(BIN)/conveyor index

clean:
	rm -rf $(VENV) .conveyor .pytest_cache
