/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * tracer: the kernel side as seen from user space. Checks that the host can
 * run porttrace, configures and loads the BPF object, attaches the hooks the
 * kernel offers, and feeds ring-buffer records to the decoder.
 */
#ifndef PT_TRACER_H
#define PT_TRACER_H

#include <stdbool.h>
#include "decoder.h"

#define PT_MAX_PIDS 1024
#define PT_MAX_PORTS 1024
#define PT_DEFAULT_RING_MB 8

struct tracer_opts {
	const __u32 *pids;
	int n_pids;
	const __u16 *ports;
	int n_ports;
	__u8 family;		/* 0, AF_INET or AF_INET6 */
	__u8 proto;		/* 0, IPPROTO_TCP or IPPROTO_UDP */
	bool ephemeral;
	bool failures;
	__u64 cgroup_id;	/* only owners in this cgroup v2 subtree; 0: all */
	__u32 cgroup_level;	/* its depth: 0 is the root */
	unsigned int ring_mb;	/* power of two */
	/* Attach every hook, but let each program return at once: what the
	 * hook points alone cost (tools/ptfloor, for make bench). */
	bool hooks_only;
};

struct tracer;

/*
 * Everything up to attached hooks; on failure says why on stderr (one line)
 * and returns NULL. Events go to fn(ctx, ev) through d.
 */
struct tracer *tracer__new(const struct tracer_opts *opts, struct decoder *d, pt_event_fn fn,
			   void *ctx);
void tracer__free(struct tracer *t);

/* Wait up to timeout_ms, then deliver everything queued. Returns the
 * number of records, or a negative errno (-EINTR is not an error). */
int tracer__poll(struct tracer *t, int timeout_ms);

/*
 * Records the kernel lost since load: those the ring could not take or that
 * could not be made, and hook runs it skipped. Asking for skipped runs takes
 * a syscall per program, so unless fresh they are as of the last 100 ms.
 */
unsigned long long tracer__lost(struct tracer *t, bool fresh);

/* Space-separated names of the hooks attached. */
const char *tracer__hooks(const struct tracer *t);

/*
 * Also append every raw record to fd as a native-endian __u32 length and
 * the record, for replay without the kernel (tools/ptreplay). -1: stop.
 */
void tracer__record_raw(struct tracer *t, int fd);

/* Run time of each loaded program, as the kernel counts it while
 * kernel.bpf_stats_enabled is 1 (0 programs otherwise). */
struct tracer_prog_stat {
	const char *name;
	unsigned long long run_ns, runs;
};
size_t tracer__prog_stats(struct tracer *t, struct tracer_prog_stat *v, size_t max);

/* The ring buffer's size, and the most it held queued when the reader came
 * back for it since the previous call; 0, or -ENODATA where the positions
 * could not be mapped. */
int tracer__ring_fill(struct tracer *t, unsigned long *bytes, unsigned long *max_queued);

/* A TCP socket only bound before tracing began (decoder__prebound()):
 * have the kernel send its release, which nothing else would mark.
 * 0 or -errno. */
int tracer__watch_release(struct tracer *t, __u64 cookie);

/* Check the preconditions that need no BPF: capabilities and BTF. */
int tracer__preflight(void);

#endif /* PT_TRACER_H */
