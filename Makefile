# The two commands: `make run` and `make test`. Everything else here is for developers.
# Debian's own interpreter when there is one: it is built with PGO and LTO, and the bot's
# throughput is bound by the interpreter (see README, benchmarks).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench extract update-catalogs compile-catalogs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The results chart's Chinese (handlers/charts.py finds this file by path; DejaVu would draw
# boxes): Debian's WenQuanYi Micro Hei, 1.6 MB, when it is missing, as for python3-venv.
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc

$(CJK_FONT):
	apt-get install -y --no-install-recommends fonts-wqy-microhei \
		|| { apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei; } \
		|| { echo "The results chart needs a CJK font: apt-get install fonts-wqy-microhei (as root)" >&2; exit 1; }

locales/%/LC_MESSAGES/messages.mo: locales/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile -d locales -D messages -l $*

# Optional: without an up-to-date .mo the bot compiles the .po at start-up (handlers/i18n.py),
# which is how an installed wheel, which ships the .po files only, speaks Chinese.
compile-catalogs: locales/zh_CN/LC_MESSAGES/messages.mo locales/en/LC_MESSAGES/messages.mo

run: $(STAMP) compile-catalogs $(CJK_FONT)
	$(BIN)/linli init
	$(BIN)/linli run

# Two workers: most of the suite's time is `linli` processes starting up, which is CPU work.
test: $(STAMP) compile-catalogs $(CJK_FONT)
	$(BIN)/linli init
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP) compile-catalogs
	$(BIN)/python bench/updates.py

extract: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k _ -k gettext -k ngettext:1,2 --no-location --sort-output -o locales/messages.pot .

update-catalogs: extract
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching --ignore-obsolete

clean:
	rm -rf $(VENV) data
