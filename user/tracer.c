// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "cgroup.h"
#include "clock.h"
#include "log.h"
#include "porttrace.skel.h"
#include "tracer.h"

#define TRACEFS "/sys/kernel/tracing"
/* Set to 1, porttrace attaches the syscall tracepoints even where the kernel
 * offers fentry/fexit: both sets can be compared on one kernel. */
#define FORCE_SYSCALLS_ENV "PORTTRACE_SYSCALL_HOOKS"

/* Where the facts of the socket calls (bind, connect, send, accept) come
 * from; the state and cgroup hooks are the same in every set. */
enum hookset {
	HOOKS_FEXIT,		/* fentry/fexit on the kernel's socket functions */
	HOOKS_SYSCALLS,		/* syscall tracepoints */
	HOOKS_NONE,		/* neither: no tracefs, no fentry */
};

struct tracer {
	struct porttrace_bpf *skel;
	struct ring_buffer *rb;
	struct decoder *dec;
	pt_event_fn fn;
	void *ctx;
	int cgroup_fd;
	int ncpus;
	int cb_err;
	int raw_fd;
	char *raw;		/* raw records waiting for a write */
	size_t raw_len;
	char hooks[768];
	char hookset[160];	/* which set, and why */
	/* The ring's positions, mapped read-only: how full it is when the
	 * reader comes back for more (libbpf 1.1 has no accessor). */
	const volatile unsigned long *cons_pos, *prod_pos;
	size_t page;
	unsigned long ring_bytes, fill_max;	/* most queued since last asked */
	unsigned long long skipped;	/* hook runs skipped, as last asked */
	__u64 skipped_ns;		/* when that was */
};

#define SKIPPED_ASK_NS 100000000ULL	/* 100 ms */

#define RAW_BUF (1 << 20)

/* ---- preflight ---- */

static bool has_cap(const struct __user_cap_data_struct *d, int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

int tracer__preflight(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &hdr, data)) {
		p_err("cannot read capabilities: %s", strerror(errno));
		return -errno;
	}
	/* CAP_BPF and CAP_PERFMON load tracing programs; CAP_NET_ADMIN the
	 * cgroup socket hooks. CAP_SYS_ADMIN covers all three. */
	if (!has_cap(data, CAP_SYS_ADMIN) &&
	    !(has_cap(data, CAP_BPF) && has_cap(data, CAP_PERFMON) && has_cap(data, CAP_NET_ADMIN))) {
		p_err("needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (or CAP_SYS_ADMIN): run it as root, e.g. sudo porttrace");
		return -EPERM;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		p_err("kernel has no BTF (/sys/kernel/btf/vmlinux: %s); porttrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
		      strerror(errno));
		return -ENOTSUP;
	}
	return 0;
}

/* ---- feature probes ---- */

/* Say which missing kernel feature stops the load, instead of a libbpf dump. */
static void explain_load_failure(int err)
{
	/* A probe answers 1 (there), 0 (missing) or <0 (cannot tell). */
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) == 0)
		p_err("kernel lacks the BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8+)");
	else if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SK_STORAGE, NULL) == 0)
		p_err("kernel lacks BPF socket storage (BPF_MAP_TYPE_SK_STORAGE, Linux 5.2+)");
	else if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCK, NULL) == 0)
		p_err("kernel lacks cgroup socket hooks (BPF_PROG_TYPE_CGROUP_SOCK)");
	else if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK, BPF_FUNC_sk_storage_get, NULL) == 0)
		p_err("kernel lacks bpf_sk_storage_get() in cgroup socket hooks (Linux 5.11+)");
	else
		p_err("loading BPF programs failed: %s (run with -v for the verifier log)",
		      strerror(-err));
}

static bool tracefs_ready(void)
{
	if (!access(TRACEFS "/events/syscalls", F_OK))
		return true;
	/* Fresh hosts often have tracefs unmounted. */
	if (mount("nodev", TRACEFS, "tracefs", 0, NULL) && errno != EBUSY)
		return false;
	return !access(TRACEFS "/events/syscalls", F_OK);
}

static int cgroup2_root(void)
{
	char dir[PATH_MAX];

	return cgroup__mount(dir, sizeof(dir)) ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	/* The verifier log comes at WARN level; DEBUG is libbpf's chatter. */
	if (level == LIBBPF_DEBUG || !log__verbose())
		return 0;
	return vfprintf(stderr, fmt, args);
}

/* ---- which set of socket-call hooks ---- */

/* The optional fentry/fexit programs (SEC("?fentry/...")). */
static bool fn_hook(const struct bpf_program *p)
{
	enum bpf_attach_type a = bpf_program__expected_attach_type(p);

	return bpf_program__type(p) == BPF_PROG_TYPE_TRACING &&
	       (a == BPF_TRACE_FENTRY || a == BPF_TRACE_FEXIT);
}

/* "?fexit/inet_accept" -> "inet_accept" */
static const char *fn_target(const struct bpf_program *p)
{
	const char *slash = strchr(bpf_program__section_name(p), '/');

	return slash ? slash + 1 : "";
}

/* 0, or 1 when the environment asks for the syscall tracepoints; -EINVAL
 * (said on stderr) for a value that is neither. */
static int force_syscalls(void)
{
	const char *v = getenv(FORCE_SYSCALLS_ENV);

	if (!v || !*v || !strcmp(v, "0"))
		return 0;
	if (!strcmp(v, "1"))
		return 1;
	p_err("%s must be 0 or 1, not '%s'", FORCE_SYSCALLS_ENV, v);
	return -EINVAL;
}

/*
 * Whether the kernel lets fexit programs attach to its functions: a kernel
 * built without CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS cannot, and some
 * refuse to load them (EPERM on this project's 6.18 machines). Every target
 * must be in the kernel's BTF; a two-instruction program loaded and attached
 * on the first answers for the rest before the real set meets the verifier.
 * On false, why says what refused.
 */
static bool fexit_usable(struct porttrace_bpf *skel, char *why, size_t len)
{
	const struct bpf_insn ret0[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
		{.code = BPF_JMP | BPF_EXIT},
	};
	struct btf *vmlinux = btf__load_vmlinux_btf();
	const char *probe_fn = NULL;
	struct bpf_program *p;
	int id, probe_id = -1, fd, link;

	if (!vmlinux) {
		snprintf(why, len, "reading the kernel's BTF: %s", strerror(errno));
		return false;
	}
	bpf_object__for_each_program(p, skel->obj) {
		if (!fn_hook(p))
			continue;
		id = btf__find_by_name_kind(vmlinux, fn_target(p), BTF_KIND_FUNC);
		if (id < 0) {
			snprintf(why, len, "no function %s in the kernel's BTF", fn_target(p));
			btf__free(vmlinux);
			return false;
		}
		if (!probe_fn) {
			probe_fn = fn_target(p);
			probe_id = id;
		}
	}
	btf__free(vmlinux);
	if (!probe_fn) {
		snprintf(why, len, "no fentry/fexit programs built in");
		return false;
	}
	LIBBPF_OPTS(bpf_prog_load_opts, po, .expected_attach_type = BPF_TRACE_FEXIT,
		    .attach_btf_id = probe_id);
	fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "pt_fexit_probe", "Dual BSD/GPL", ret0,
			   sizeof(ret0) / sizeof(ret0[0]), &po);
	if (fd < 0) {
		snprintf(why, len, "loading a probe fexit program on %s: %s", probe_fn,
			 strerror(errno));
		return false;
	}
	link = bpf_raw_tracepoint_open(NULL, fd);
	if (link < 0)
		snprintf(why, len, "attaching a probe fexit program to %s: %s", probe_fn,
			 strerror(errno));
	else
		close(link);
	close(fd);
	return link >= 0;
}

/* ---- set-up ---- */

static void note_hook(struct tracer *t, const char *name)
{
	size_t len = strlen(t->hooks);

	snprintf(t->hooks + len, sizeof(t->hooks) - len, "%s%s", len ? " " : "", name);
}

static void configure(struct tracer *t, const struct tracer_opts *o, enum hookset set)
{
	struct bpf_object_skeleton *s = t->skel->skeleton;
	struct porttrace_bpf *skel = t->skel;
	__u64 wake;

	skel->rodata->targ_family = o->family;
	skel->rodata->targ_proto = o->proto;
	skel->rodata->targ_pid_filter = o->n_pids > 0;
	skel->rodata->targ_cgroup_filter = o->cgroup_id != 0;
	skel->rodata->targ_cgroup_id = o->cgroup_id;
	skel->rodata->targ_cgroup_level = o->cgroup_level;
	skel->rodata->targ_port_filter = o->n_ports > 0;
	skel->rodata->targ_ephemeral = o->ephemeral;
	skel->rodata->targ_failures = o->failures;
	skel->rodata->targ_hooks_only = o->hooks_only;
	/* Wake the reader by the time a sixteenth of the ring is queued, when
	 * every CPU has submitted its share of that (a page at least); the
	 * poll timer bounds the delay when traffic is light. */
	wake = (__u64)o->ring_mb * 1024 * 1024 / 16 / (t->ncpus > 0 ? t->ncpus : 1);
	skel->rodata->wakeup_bytes = wake > 4096 ? wake : 4096;
	bpf_map__set_max_entries(skel->maps.events, o->ring_mb * 1024 * 1024);

	/* One set or the other, never both: they share the calls in flight.
	 * The connect hooks open calls that only the chosen set closes. */
	for (int i = 0; i < s->prog_cnt; i++) {
		struct bpf_program *p = *s->progs[i].prog;

		if (bpf_program__type(p) == BPF_PROG_TYPE_TRACEPOINT)
			bpf_program__set_autoload(p, set == HOOKS_SYSCALLS);
		else if (fn_hook(p))
			bpf_program__set_autoload(p, set == HOOKS_FEXIT);
	}
	if (set == HOOKS_NONE) {
		bpf_program__set_autoload(skel->progs.handle_connect4, false);
		bpf_program__set_autoload(skel->progs.handle_connect6, false);
	}
}

static int fill_filters(struct tracer *t, const struct tracer_opts *o)
{
	__u32 zero = 0;
	__u8 one = 1;

	for (int i = 0; i < o->n_pids; i++) {
		if (bpf_map__update_elem(t->skel->maps.pid_filter, &o->pids[i], sizeof(__u32), &one,
					 sizeof(one), BPF_ANY)) {
			p_err("setting up the pid filter: %s", strerror(errno));
			return -errno;
		}
	}
	if (o->n_ports) {
		__u64 *bits = calloc(65536 / 64, sizeof(__u64));
		int err;

		if (!bits)
			return -ENOMEM;
		for (int i = 0; i < o->n_ports; i++)
			bits[o->ports[i] / 64] |= 1ULL << (o->ports[i] % 64);
		err = bpf_map__update_elem(t->skel->maps.port_filter, &zero, sizeof(zero), bits,
					   65536 / 8, BPF_ANY);
		free(bits);
		if (err) {
			p_err("setting up the port filter: %s", strerror(-err));
			return err;
		}
	}
	return 0;
}

struct cg_hook {
	struct bpf_program *prog;
	struct bpf_link **link;
	const char *name;
};

static int attach_cgroup(struct tracer *t, const struct cg_hook *cg, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*cg[i].link = bpf_program__attach_cgroup(cg[i].prog, t->cgroup_fd);
		if (!*cg[i].link) {
			p_err("attaching %s: %s", cg[i].name, strerror(errno));
			return -errno;
		}
		note_hook(t, cg[i].name);
	}
	return 0;
}

static int attach_all(struct tracer *t, enum hookset set)
{
	struct porttrace_bpf *skel = t->skel;
	const struct cg_hook cg[] = {
		{skel->progs.handle_sock_create, &skel->links.handle_sock_create, "cgroup/sock_create"},
		{skel->progs.handle_post_bind4, &skel->links.handle_post_bind4, "cgroup/post_bind4"},
		{skel->progs.handle_post_bind6, &skel->links.handle_post_bind6, "cgroup/post_bind6"},
		{skel->progs.handle_sock_release, &skel->links.handle_sock_release, "cgroup/sock_release"},
	};
	const struct cg_hook connect[] = {
		{skel->progs.handle_connect4, &skel->links.handle_connect4, "cgroup/connect4"},
		{skel->progs.handle_connect6, &skel->links.handle_connect6, "cgroup/connect6"},
	};
	struct bpf_object_skeleton *s = skel->skeleton;
	int err;

	skel->links.handle_set_state = bpf_program__attach(skel->progs.handle_set_state);
	if (!skel->links.handle_set_state) {
		p_err("attaching tp_btf/inet_sock_set_state: %s", strerror(errno));
		return -errno;
	}
	note_hook(t, "tp_btf/inet_sock_set_state");
	/* After the first: the tracepoint runs its programs in the order
	 * they were attached, and the second must come second. */
	skel->links.catch_set_state = bpf_program__attach(skel->progs.catch_set_state);
	if (!skel->links.catch_set_state) {
		p_err("attaching tp_btf/inet_sock_set_state (second program): %s", strerror(errno));
		return -errno;
	}
	note_hook(t, "tp_btf/inet_sock_set_state(second)");

	t->cgroup_fd = cgroup2_root();
	if (t->cgroup_fd < 0) {
		p_err("no cgroup v2 hierarchy mounted: the socket hooks need one (mount -t cgroup2 none /sys/fs/cgroup)");
		return -ENOENT;
	}
	err = attach_cgroup(t, cg, sizeof(cg) / sizeof(cg[0]));
	if (err || set == HOOKS_NONE)
		return err;
	err = attach_cgroup(t, connect, sizeof(connect) / sizeof(connect[0]));
	if (err)
		return err;
	for (int i = 0; i < s->prog_cnt; i++) {
		struct bpf_program *p = *s->progs[i].prog;
		const char *name = bpf_program__section_name(p);

		if (!bpf_program__autoload(p) ||
		    (bpf_program__type(p) != BPF_PROG_TYPE_TRACEPOINT && !fn_hook(p)))
			continue;
		*s->progs[i].link = bpf_program__attach(p);
		if (!*s->progs[i].link) {
			err = -errno;
			/* The caller falls back to the syscall tracepoints. */
			if (set == HOOKS_FEXIT)
				p_info("attaching %s: %s", name, strerror(-err));
			else
				p_err("attaching %s: %s", name, strerror(-err));
			return err;
		}
		note_hook(t, name[0] == '?' ? name + 1 : name);
	}
	return 0;
}

static void raw_flush(struct tracer *t)
{
	size_t off = 0;

	while (off < t->raw_len) {
		ssize_t n = write(t->raw_fd, t->raw + off, t->raw_len - off);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			p_warn("recording raw records: %s; recording stopped", strerror(errno));
			t->raw_fd = -1;
			break;
		}
		off += n;
	}
	t->raw_len = 0;
}

static void raw_append(struct tracer *t, const void *data, size_t size)
{
	__u32 len = size;

	if (t->raw_len + sizeof(len) + size > RAW_BUF)
		raw_flush(t);
	if (t->raw_fd < 0 || sizeof(len) + size > RAW_BUF)
		return;
	memcpy(t->raw + t->raw_len, &len, sizeof(len));
	memcpy(t->raw + t->raw_len + sizeof(len), data, size);
	t->raw_len += sizeof(len) + size;
}

int tracer__watch_release(struct tracer *t, __u64 cookie)
{
	__u8 one = 1;
	int err = bpf_map__update_elem(t->skel->maps.prebound, &cookie, sizeof(cookie), &one,
				       sizeof(one), BPF_ANY);

	if (!err)
		t->skel->bss->watch_prebound = true;
	return err;
}

void tracer__record_raw(struct tracer *t, int fd)
{
	if (t->raw_fd >= 0)
		raw_flush(t);
	if (fd >= 0 && !t->raw && !(t->raw = malloc(RAW_BUF))) {
		p_warn("recording raw records: out of memory");
		return;
	}
	t->raw_fd = fd;
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct tracer *t = ctx;
	int err;

	if (t->raw_fd >= 0)
		raw_append(t, data, size);
	err = decoder__record(t->dec, data, size, t->fn, t->ctx);

	if (err)
		t->cb_err = err;
	return err;
}

/*
 * The kernel lays a ring buffer map out as a page holding the consumer
 * position, a page holding the producer position, then the data; both
 * positions only grow. A failed mapping only leaves the fill unknown.
 */
static void map_positions(struct tracer *t)
{
	int fd = bpf_map__fd(t->skel->maps.events);
	void *c, *p;

	t->page = sysconf(_SC_PAGESIZE);
	t->ring_bytes = bpf_map__max_entries(t->skel->maps.events);
	c = mmap(NULL, t->page, PROT_READ, MAP_SHARED, fd, 0);
	p = mmap(NULL, t->page, PROT_READ, MAP_SHARED, fd, t->page);
	t->cons_pos = c == MAP_FAILED ? NULL : c;
	t->prod_pos = p == MAP_FAILED ? NULL : p;
}

int tracer__ring_fill(struct tracer *t, unsigned long *bytes, unsigned long *max_queued)
{
	if (!t->cons_pos || !t->prod_pos)
		return -ENODATA;
	*bytes = t->ring_bytes;
	*max_queued = t->fill_max;
	t->fill_max = 0;
	return 0;
}

/* Everything from an opened object to attached hooks, with one set of
 * socket-call hooks. */
static int start(struct tracer *t, const struct tracer_opts *opts, enum hookset set)
{
	int err;

	configure(t, opts, set);
	err = porttrace_bpf__load(t->skel);
	if (err) {
		/* The caller falls back to the syscall tracepoints. */
		if (set == HOOKS_FEXIT)
			p_info("loading with the fentry/fexit programs: %s", strerror(-err));
		else
			explain_load_failure(err);
		return err;
	}
	err = fill_filters(t, opts);
	return err ? err : attach_all(t, set);
}

/* Undo start(), down to a freshly opened object, for another try. */
static int restart(struct tracer *t)
{
	porttrace_bpf__destroy(t->skel);
	if (t->cgroup_fd >= 0)
		close(t->cgroup_fd);
	t->cgroup_fd = -1;
	t->hooks[0] = '\0';
	t->skel = porttrace_bpf__open();
	if (!t->skel) {
		p_err("opening the BPF object: %s", strerror(errno));
		return -ENOMEM;
	}
	return 0;
}

/* The syscall tracepoints, or no socket-call hooks at all without tracefs;
 * why fentry/fexit are not used is in why. */
static enum hookset fallback(struct tracer *t, const char *why)
{
	if (tracefs_ready()) {
		snprintf(t->hookset, sizeof(t->hookset), "syscall tracepoints (no fentry/fexit: %s)",
			 why);
		return HOOKS_SYSCALLS;
	}
	p_warn("tracefs unavailable at " TRACEFS ": binds, autobinds and their failures will not be traced");
	snprintf(t->hookset, sizeof(t->hookset), "none (no tracefs; no fentry/fexit: %s)", why);
	return HOOKS_NONE;
}

/* The set the environment and the kernel allow; the reason in t->hookset. */
static int choose_hookset(struct tracer *t, enum hookset *set)
{
	int force = force_syscalls();
	char why[128];

	if (force < 0)
		return force;
	if (force) {
		snprintf(why, sizeof(why), "%s=1", FORCE_SYSCALLS_ENV);
	} else if (fexit_usable(t->skel, why, sizeof(why))) {
		snprintf(t->hookset, sizeof(t->hookset), "fentry/fexit on the kernel's socket functions");
		*set = HOOKS_FEXIT;
		return 0;
	}
	*set = fallback(t, why);
	return 0;
}

struct tracer *tracer__new(const struct tracer_opts *opts, struct decoder *d, pt_event_fn fn,
			   void *ctx)
{
	struct tracer *t = calloc(1, sizeof(*t));
	enum hookset set;
	int err;

	if (!t) {
		p_err("out of memory");
		return NULL;
	}
	t->cgroup_fd = -1;
	t->raw_fd = -1;
	t->dec = d;
	t->fn = fn;
	t->ctx = ctx;
	t->ncpus = libbpf_num_possible_cpus();
	libbpf_set_print(libbpf_print);

	t->skel = porttrace_bpf__open();
	if (!t->skel) {
		p_err("opening the BPF object: %s", strerror(errno));
		goto fail;
	}
	if (choose_hookset(t, &set))
		goto fail;
	err = start(t, opts, set);
	/* The probe passed but the real set did not: all of it goes, so that
	 * no fact comes from both sets or from neither. */
	if (err && set == HOOKS_FEXIT) {
		char why[64];

		snprintf(why, sizeof(why), "the fentry/fexit set failed: %s", strerror(-err));
		if (restart(t))
			goto fail;
		set = fallback(t, why);
		err = start(t, opts, set);
	}
	if (err)
		goto fail;
	p_info("socket-call hooks: %s", t->hookset);
	t->rb = ring_buffer__new(bpf_map__fd(t->skel->maps.events), on_record, t, NULL);
	if (!t->rb) {
		p_err("setting up the ring buffer reader: %s", strerror(errno));
		goto fail;
	}
	map_positions(t);
	return t;
fail:
	tracer__free(t);
	return NULL;
}

static unsigned long long skipped_runs(struct tracer *t);
static unsigned long long taken_by_other(struct tracer *t);
static unsigned long long not_taken(struct tracer *t);

void tracer__free(struct tracer *t)
{
	if (!t)
		return;
	if (t->raw_fd >= 0)
		raw_flush(t);
	/* Which of the two ways the kernel lost records (make bench reports
	 * both storms' figures from this line). */
	if (t->skel && t->skel->links.handle_set_state)
		p_info("lost in the kernel: %llu not taken (ring full, state not kept), %llu hook runs skipped (recursion_misses); %llu transitions skipped by one state program and taken by the other",
		       not_taken(t), skipped_runs(t), taken_by_other(t));
	free(t->raw);
	if (t->cons_pos)
		munmap((void *)t->cons_pos, t->page);
	if (t->prod_pos)
		munmap((void *)t->prod_pos, t->page);
	ring_buffer__free(t->rb);
	porttrace_bpf__destroy(t->skel);
	if (t->cgroup_fd >= 0)
		close(t->cgroup_fd);
	free(t);
}

int tracer__poll(struct tracer *t, int timeout_ms)
{
	int n;

	/* What queued while the reader was away: the fill worth watching. */
	if (t->cons_pos && t->prod_pos) {
		unsigned long queued = *t->prod_pos - *t->cons_pos;

		if (queued > t->fill_max)
			t->fill_max = queued;
	}
	n = ring_buffer__poll(t->rb, timeout_ms);

	if (n < 0 && n != -EINTR)
		return t->cb_err ? t->cb_err : n;
	/* Records are submitted without a wake-up until enough are queued;
	 * collect the rest here. */
	n = ring_buffer__consume(t->rb);
	if (n < 0)
		return t->cb_err ? t->cb_err : n;
	return n;
}

/*
 * A tracing program that fires again on a CPU where it is still running
 * (a softirq's transition landing on a connect() or close() in progress) is
 * not run the second time: the kernel only counts it in the program's
 * recursion_misses. Cgroup programs have no such guard, so only attached
 * tracing programs are asked. The two state programs take what the other
 * skipped (bpf/porttrace.bpf.c, catch_set_state): their skips are counted
 * apart (state), and are no loss.
 */
static unsigned long long misses(struct tracer *t, bool state)
{
	const struct bpf_object_skeleton *s = t->skel->skeleton;
	struct porttrace_bpf *skel = t->skel;
	unsigned long long sum = 0;

	for (int i = 0; i < s->prog_cnt; i++) {
		struct bpf_program *p = *s->progs[i].prog;
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		enum bpf_prog_type type = bpf_program__type(p);
		bool is_state = p == skel->progs.handle_set_state || p == skel->progs.catch_set_state;

		if (!*s->progs[i].link || is_state != state ||
		    (type != BPF_PROG_TYPE_TRACING && type != BPF_PROG_TYPE_TRACEPOINT))
			continue;
		if (!bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
			sum += info.recursion_misses;
	}
	return sum;
}

static unsigned long long skipped_runs(struct tracer *t)
{
	return misses(t, false);
}

static unsigned long long taken_by_other(struct tracer *t)
{
	return misses(t, true);
}

/* Records the ring had no room for, or whose state could not be kept. */
static unsigned long long not_taken(struct tracer *t)
{
	unsigned long long sum = 0;
	__u64 vals[t->ncpus > 0 ? t->ncpus : 1];
	__u32 zero = 0;

	if (t->ncpus > 0 && !bpf_map__lookup_elem(t->skel->maps.lost, &zero, sizeof(zero), vals,
						  sizeof(vals), 0)) {
		for (int i = 0; i < t->ncpus; i++)
			sum += vals[i];
	}
	return sum;
}

unsigned long long tracer__lost(struct tracer *t, bool fresh)
{
	__u64 now_ns = clock__ns(CLOCK_MONOTONIC);

	if (fresh || now_ns - t->skipped_ns >= SKIPPED_ASK_NS) {
		t->skipped = skipped_runs(t);
		t->skipped_ns = now_ns;
	}
	return not_taken(t) + t->skipped;
}

const char *tracer__hooks(const struct tracer *t)
{
	return t->hooks;
}

size_t tracer__prog_stats(struct tracer *t, struct tracer_prog_stat *v, size_t max)
{
	struct bpf_program *prog;
	char on = '0';
	size_t n = 0;
	FILE *f;

	/* The kernel times programs only while asked to: the numbers would
	 * be zeros, or stale, otherwise. */
	f = fopen("/proc/sys/kernel/bpf_stats_enabled", "r");
	if (f) {
		on = fgetc(f);
		fclose(f);
	}
	if (!t || on != '1')
		return 0;
	bpf_object__for_each_program(prog, t->skel->obj) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(prog);

		if (n == max || fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
			continue;
		v[n].name = bpf_program__name(prog);
		v[n].run_ns = info.run_time_ns;
		v[n].runs = info.run_cnt;
		n++;
	}
	return n;
}
