/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * metrics: the Prometheus text exposition of a run. One more consumer of
 * the event stream; everything about ports held (occupancy by state, peak,
 * capacity, rates, time until full, failures by destination, connect()
 * latency) is read from the exhaustion accounting at build time, never
 * counted twice. What it counts itself is plain counting the accounting
 * does not keep: events by type, failures per owner (process name and
 * container or unit, never pid) and listening sockets by scope.
 *
 * Cardinality is bounded: at most max_dests destination series sets, the
 * fullest first, and as many owners; the rest are summed into one series
 * labelled "other".
 */
#ifndef PT_METRICS_H
#define PT_METRICS_H

#include <stddef.h>
#include "cgroup.h"
#include "event.h"
#include "exhaustion.h"
#include "netns.h"
#include "tracer.h"

#define METRICS_DEFAULT_DESTS 50
#define METRICS_MAX_DESTS 10000

/* What the run knows about itself, as of the build. */
struct metrics_health {
	unsigned long long lost_kernel;	/* records the kernel could not queue */
	unsigned long long lost_write;	/* events dropped by a failed write */
	unsigned long long bad_records;	/* malformed records skipped */
	double last_build_s;		/* how long the previous build took */
	/* The ring buffer: size (0: unknown) and the most it held queued when
	 * the reader came back for it, since the previous build. */
	unsigned long ring_bytes, ring_max_queued;
	/* BPF programs' own run time; none while kernel.bpf_stats_enabled is 0 */
	const struct tracer_prog_stat *progs;
	size_t nprogs;
};

struct metrics;

/* ex, cg and ns are borrowed and must outlive m; cg and ns may be NULL. */
struct metrics *metrics__new(unsigned int max_dests, struct exhaustion *ex, struct cgroups *cg,
			     struct netns *ns);
void metrics__free(struct metrics *m);

/* The consumer: every event of the stream. */
int metrics__event(void *m, const struct pt_event *ev);

/* The whole exposition at now_ns (the accounting's clock; 0: the last
 * event's time) and mono_ns (for ages), into a malloc()ed buffer that the
 * caller frees; 0 or -ENOMEM. */
int metrics__build(struct metrics *m, __u64 now_ns, __u64 mono_ns, const struct metrics_health *h,
		   char **text, size_t *len);

#endif /* PT_METRICS_H */
