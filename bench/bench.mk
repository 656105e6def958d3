# `make bench`: benchmarks of the sidecar and the controller -> docs/benchmarks.md.
# Included from the root Makefile (`-include bench/bench.mk`), which defines VENV, BIN,
# CACHE_DIR, the `venv` target and `bench` as phony. Not part of `make test`.
#
#   make bench                      the full run (about 15 minutes on a quiet 2-core machine)
#   BENCH_QUICK=1 make bench        a smoke run: every step, short durations
#   BENCH_PARTS=sidecar,profile     some parts only (others keep their last results)
#   BENCH_LITELLM=0                 leave LiteLLM out

LITELLM_VENV ?= $(CACHE_DIR)/litellm-venv
LITELLM_INSTALL_LOG ?= $(CACHE_DIR)/litellm-install.log
export LITELLM_VENV LITELLM_INSTALL_LOG

bench: venv $(VENV)/.bench-installed
	bench/install.sh
	@if [ -z "$$KUBECONFIG" ] && { [ -z "$$BENCH_PARTS" ] || [[ "$$BENCH_PARTS" == *controller* ]]; }; then \
		$(MAKE) cluster-up; \
	fi
	$(BIN)/python -m bench.run

# The `bench` extra (matplotlib, pyinstrument) in the project's virtualenv.
$(VENV)/.bench-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev,fast,bench]'
	touch $@
