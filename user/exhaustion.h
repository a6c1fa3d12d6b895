/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * exhaustion: how close each network namespace is to running out of
 * ephemeral ports, per destination, from the event stream: capacity,
 * occupancy by state, peak, allocation and release rates, failures,
 * connect() latency percentiles, forecast and warnings.
 */
#ifndef PT_EXHAUSTION_H
#define PT_EXHAUSTION_H

#include <stdio.h>
#include "event.h"

struct exhaustion_opts {
	double warn_frac;	/* warn when occupancy crosses this, 0..1 */
	double interval_s;	/* seconds between snapshot records */
};

struct exhaustion;

struct exhaustion *exhaustion__new(const struct exhaustion_opts *o);
void exhaustion__free(struct exhaustion *e);

/* The consumer: every event of the stream, live or read from a log. */
int exhaustion__event(void *e, const struct pt_event *ev);

/* Live only: compare with the kernel's socket table; report divergence. */
int exhaustion__check(struct exhaustion *e, __u64 now_ns);

/*
 * One JSON Lines snapshot record ({"type":"exhaustion",...}\n) of the
 * figures at now_ns into buf; returns its length, 0 when nothing is due
 * (interval not elapsed), or -ENOSPC when cap is too small.
 */
int exhaustion__snapshot(struct exhaustion *e, __u64 now_ns, char *buf, size_t cap);

/* The human report printed at exit and by "porttrace exhaustion FILE". */
void exhaustion__report(struct exhaustion *e, FILE *f);

/* porttrace exhaustion FILE... and porttrace top. */
int exhaustion__main(int argc, char **argv);
int top__main(int argc, char **argv);

#endif /* PT_EXHAUSTION_H */
