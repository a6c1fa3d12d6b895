/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * timeline: what each process did with ports, and when. A consumer of the
 * event stream, so a live run (--timeline) and a log read back
 * (porttrace timeline FILE) give the same timelines.
 *
 * A process is a pid plus its start time: a reused pid starts a new
 * timeline. Memory stays bounded: per process the first keep/2 ports taken
 * and the keep/2 most recently released ones are kept in detail, the ones
 * in between are folded into the counts, which stay exact (the median of
 * hold times within 6%, from a bounded histogram). A process that held
 * nothing for a minute of event time is retired: its timeline goes to a
 * spill file, printed first at the end, and leaves memory.
 */
#ifndef PT_TIMELINE_H
#define PT_TIMELINE_H

#include <stdbool.h>
#include <stdio.h>
#include "event.h"
#include "output.h"

#define PT_TIMELINE_KEEP 200	/* default --keep */
#define PT_TIMELINE_SHOW 10	/* ports shown at each end when summarised */

struct timeline_opts {
	const __u32 *pids;	/* select processes; none: all */
	int n_pids;
	char *const *comms;
	int n_comms;
	unsigned int keep;	/* released ports kept in detail per process */
	bool all;		/* print every port kept, no summary */
};

struct timeline;

struct timeline *timeline__new(const struct timeline_opts *o);
void timeline__free(struct timeline *t);

int timeline__event(void *t, const struct pt_event *ev);	/* a pt_event_fn */

/* Processes whose timelines are in memory now (the retired ones are not). */
size_t timeline__procs(const struct timeline *t);

/* Name processes' units and containers from cg (borrowed; NULL: ids only). */
struct cgroups;
void timeline__set_names(struct timeline *t, struct cgroups *cg);

/* Times are printed relative to base_ns (the run's start). */
void timeline__print(struct timeline *t, FILE *f, enum output_format fmt, __u64 base_ns);

/* ---- what the timelines hold, for views that draw them (porttrace report) ---- */

#define TIMELINE_FAIL_KINDS 8

struct timeline_proc_info {
	__u64 key;		/* for timeline__each_life(): the same in memory or retired */
	__u32 pid;
	__u64 start_ns;
	char comm[PT_TASK_COMM_LEN];
	__u64 cgroup;
	__u64 first_ns, last_ns;
	unsigned long taken, held, peak, time_wait, folded, failures;
	__u64 peak_ns;
	struct {
		int err;
		unsigned long n;
		__u64 first_ns, last_ns;
	} fail[TIMELINE_FAIL_KINDS];	/* failures by errno */
	int nfail;
};

/* One port's life (or one failed allocation) that a timeline kept in detail. */
struct timeline_life {
	struct pt_sock sk;	/* lport 0: no port (failed, or never picked) */
	const char *how;	/* "connect-autobind", "bind", ..., "failed" */
	bool failed, released, computed;
	int err;		/* failed: the errno */
	__u8 reason;		/* released: enum pt_reason */
	__u64 taken_ns, tw_ns, released_ns;	/* 0: did not happen */
	__u64 latency_ns;
	unsigned int nstates;	/* TCP states in time order */
	const __u8 *state;
	const __u64 *state_ns;
};

/* The stream has ended: fn for each selected process that took a port or
 * failed to, those retired to the spill file included, in no order; stops
 * at fn's first non-zero result. */
int timeline__each_proc(struct timeline *t, int (*fn)(void *ctx, const struct timeline_proc_info *p),
			void *ctx);
/* fn for every life the process key kept, in the order they began. A
 * life's pointers stay valid until the next call, or timeline__free(). */
int timeline__each_life(struct timeline *t, __u64 key,
			int (*fn)(void *ctx, const struct timeline_life *l), void *ctx);

/* porttrace timeline FILE... */
int timeline__main(int argc, char **argv);

#endif /* PT_TIMELINE_H */
