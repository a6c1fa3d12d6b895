# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#
# porttrace. The two commands (both need root):
#   make run    install what is missing, build, start porttrace (ARGS="...")
#   make test   install what is missing, build, run every test
#
# Quiet by default; V=1 shows the full commands. Warnings are errors when
# CI=true. Build products go to $(OUTPUT).

VERSION := 0.1.0
OUTPUT ?= build
PREFIX ?= /usr/local
DESTDIR ?=

CC ?= cc
CLANG ?= clang
LLVM_STRIP ?= llvm-strip
BPFTOOL ?= bpftool
PYTHON ?= /usr/bin/python3

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
VMLINUX_DIR := vmlinux/$(ARCH)

WERROR := $(if $(filter true,$(CI)),-Werror,)
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Wno-unused-parameter $(WERROR) \
	  -DPT_VERSION='"$(VERSION)"' -I$(OUTPUT) -Ibpf -Iuser
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -D__BPF__ -Wall $(WERROR) \
	      -I$(VMLINUX_DIR) -Ibpf
LDLIBS := -lbpf -lelf -lz -lm -lmicrohttpd -pthread

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

# Debian packages a fresh machine needs to build, run and test porttrace.
DEB_PKGS := clang llvm libclang-rt-dev libbpf-dev libelf-dev zlib1g-dev bpftool gcc make \
	    iproute2 python3 python3-pytest nginx chromium python3-pil e2fsprogs \
	    libmicrohttpd-dev prometheus prometheus-node-exporter logrotate systemd python3-yaml \
	    valgrind

USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(USER_SRCS))
LIB_OBJS := $(filter-out $(OUTPUT)/user/main.o,$(USER_OBJS))
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_OBJS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/%.o,$(UNIT_SRCS))
UNIT_BIN := $(OUTPUT)/tests/unit

.DELETE_ON_ERROR:
.SECONDEXPANSION:
.PHONY: all deps run test test-unit test-e2e test-kernels fuzz bench bench-quick bench-soak install clean

all: $(OUTPUT)/porttrace $(OUTPUT)/portload $(OUTPUT)/ptreplay $(OUTPUT)/ptfloor \
     $(OUTPUT)/ptsyscall

$(OUTPUT) $(OUTPUT)/user $(OUTPUT)/tests:
	$(Q)mkdir -p $@

$(OUTPUT)/porttrace.bpf.o: bpf/porttrace.bpf.c | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(OUTPUT)/porttrace.skel.h: $(OUTPUT)/porttrace.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name porttrace_bpf > $@

# Every user-space object may include the skeleton; generate it first.
$(OUTPUT)/user/%.o: user/%.c $(OUTPUT)/porttrace.skel.h | $(OUTPUT)/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(OUTPUT)/porttrace: $(USER_OBJS)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(OUTPUT)/portload: tools/portload.c | $(OUTPUT)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) -MMD -MP -pthread $< -o $@

# The host tax: syscalls unrelated to sockets, timed (make bench).
$(OUTPUT)/ptsyscall: tools/ptsyscall.c | $(OUTPUT)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) -MMD -MP $< -o $@

# The tools that link porttrace's own modules: replay and the hooks' floor.
$(OUTPUT)/ptreplay $(OUTPUT)/ptfloor: $(OUTPUT)/%: tools/%.c $(LIB_OBJS) | $(OUTPUT)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) -MMD -MP $< $(LIB_OBJS) $(LDLIBS) -o $@

$(OUTPUT)/tests/%.o: tests/unit/%.c $(OUTPUT)/porttrace.skel.h | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(UNIT_BIN): $(UNIT_OBJS) $(LIB_OBJS)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# Installs only what is missing; apt-get update first, as a fresh machine's
# package lists are empty.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || \
			missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "  DEPS     installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: deps
	$(Q)$(MAKE) --no-print-directory all
	./$(OUTPUT)/porttrace $(ARGS)

test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BIN)
	$(Q)$(MAKE) --no-print-directory test-unit test-e2e

# Once as they are, then under valgrind: a read of freed memory (a pointer
# into a retired timeline) may print the right bytes by luck.
test-unit: $(UNIT_BIN)
	$(Q)$(UNIT_BIN)
	$(call msg,MEMCHECK,$(UNIT_BIN))
	$(Q)valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
		$(UNIT_BIN) >/dev/null 2>$(OUTPUT)/unit-memcheck.log || \
		{ grep -v '^porttrace:' $(OUTPUT)/unit-memcheck.log; exit 1; }

test-e2e: all
	$(Q)PORTTRACE=$(abspath $(OUTPUT)/porttrace) PORTLOAD=$(abspath $(OUTPUT)/portload) \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

# The log reader and the decoder under libFuzzer, ASan and UBSan;
# FUZZ_SECONDS bounds each.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := logreader decoder
FUZZ_SRCS_logreader := user/logreader.c user/names.c user/log.c
FUZZ_SRCS_decoder := user/decoder.c user/holders.c user/socktab.c
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	       -DPT_VERSION='"$(VERSION)"' -Ibpf -Iuser

$(OUTPUT)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_SRCS_$$*) $(wildcard user/*.h bpf/porttrace.h)
	$(call msg,FUZZ-CC,$@)
	$(Q)mkdir -p $(OUTPUT)/fuzz/corpus-$*
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(FUZZ_SRCS_$*) -lz -o $@

# The seeds of the log reader are log lines; the decoder's, raw records.
FUZZ_SEEDS_logreader := tests/fuzz/seeds
FUZZ_SEEDS_decoder := tests/fuzz/seeds-decoder
fuzz_run = $(OUTPUT)/fuzz/fuzz_$(1) -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=5 \
	   $(OUTPUT)/fuzz/corpus-$(1) $(FUZZ_SEEDS_$(1)) > $(OUTPUT)/fuzz/log-$(1) 2>&1; \
	   rc=$$?; printf '%s: ' $(1); tail -n 1 $(OUTPUT)/fuzz/log-$(1); \
	   [ $$rc -eq 0 ] || { grep -A20 'ERROR:' $(OUTPUT)/fuzz/log-$(1); exit $$rc; }

fuzz: $(patsubst %,$(OUTPUT)/fuzz/fuzz_%,$(FUZZ_TARGETS))
	$(Q)$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t));)

# The same binary on Debian's 6.1 kernel under qemu (TCG): CO-RE proved.
test-kernels: all
	$(Q)tests/kernels/run.sh $(OUTPUT)

# Overhead and throughput, side by side; bench-quick keeps CI honest.
bench: all
	$(Q)$(PYTHON) tools/bench.py --build $(OUTPUT)

bench-quick: all
	$(Q)$(PYTHON) tools/bench.py --build $(OUTPUT) --quick

# Ten minutes: bounded memory and constant cost per event (SOAK_SECONDS).
SOAK_SECONDS ?= 600
bench-soak: all
	$(Q)$(PYTHON) tools/bench.py --build $(OUTPUT) --soak --soak-seconds $(SOAK_SECONDS)

# The service files go where their tools look: systemd's unit directory
# under PREFIX (its ExecStart made to match), logrotate's /etc, and the
# DaemonSet and alert rules as documentation.
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
install: $(OUTPUT)/porttrace
	install -D -m 0755 $(OUTPUT)/porttrace $(DESTDIR)$(PREFIX)/sbin/porttrace
	install -D -m 0644 man/porttrace.8 $(DESTDIR)$(PREFIX)/share/man/man8/porttrace.8
	install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR) $(DESTDIR)/etc/logrotate.d $(DESTDIR)$(PREFIX)/share/porttrace
	sed 's|/usr/local/sbin/porttrace|$(PREFIX)/sbin/porttrace|' deploy/porttrace.service \
		> $(DESTDIR)$(SYSTEMD_UNIT_DIR)/porttrace.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/porttrace.service
	install -m 0644 deploy/porttrace.logrotate $(DESTDIR)/etc/logrotate.d/porttrace
	install -m 0644 deploy/porttrace-daemonset.yaml deploy/porttrace-alerts.yml \
		$(DESTDIR)$(PREFIX)/share/porttrace/

clean:
	rm -rf $(OUTPUT)

-include $(wildcard $(OUTPUT)/*.d $(OUTPUT)/user/*.d $(OUTPUT)/tests/*.d)
