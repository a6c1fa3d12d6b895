/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * timeline: what each process did with ports, and when. A consumer of the
 * event stream, so a live run (--timeline) and a log read back
 * (porttrace timeline FILE) give the same timelines.
 *
 * A process is a pid plus its start time: a reused pid starts a new
 * timeline. Memory stays bounded: per process the first keep/2 ports taken
 * and the keep/2 most recently released ones are kept in detail, the ones
 * in between are folded into the counts, which stay exact (the median to
 * the microsecond).
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

/* Name processes' units and containers from cg (borrowed; NULL: ids only). */
struct cgroups;
void timeline__set_names(struct timeline *t, struct cgroups *cg);

/* Times are printed relative to base_ns (the run's start). */
void timeline__print(struct timeline *t, FILE *f, enum output_format fmt, __u64 base_ns);

/* porttrace timeline FILE... */
int timeline__main(int argc, char **argv);

#endif /* PT_TIMELINE_H */
