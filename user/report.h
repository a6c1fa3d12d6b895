/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * report: a picture of ports over time, one self-contained HTML file. A
 * consumer of the event stream beside timeline and exhaustion, and a
 * reader of theirs: it accounts nothing they account.
 *  - occupancy by state, capacity, peak, failures and connect() latency
 *    of each destination are exhaustion's, sampled at every time-bucket
 *    boundary (exhaustion__each); it must see each event before
 *    exhaustion does, so that a sample holds exactly the events before
 *    the boundary;
 *  - processes and their ports' lives are the timeline's (the ports it
 *    keeps in detail), read once at the end;
 *  - of its own it keeps only the listeners (for the exposure table) and
 *    the time buckets.
 *
 * Bounded: REPORT_BUCKETS buckets per destination followed; when a bucket
 * past the last is needed, neighbours are merged two by two and the width
 * doubles (from REPORT_BUCKET0_NS), so any length of run fits. At most
 * REPORT_TRACK destinations are followed at once; a new one takes the
 * place of the least full when it is fuller. REPORT_LISTENERS listeners.
 */
#ifndef PT_REPORT_H
#define PT_REPORT_H

#include <stdbool.h>
#include <stdio.h>
#include "event.h"
#include "exhaustion.h"
#include "timeline.h"

#define REPORT_BUCKETS 480
#define REPORT_BUCKET0_NS 10000000ULL	/* 10 ms: the finest bucket */
#define REPORT_TRACK 16
#define REPORT_LISTENERS 256

struct report_opts {
	unsigned int dests;	/* destinations drawn (default 4) */
	unsigned int procs;	/* processes drawn as swimlanes (default 6) */
	unsigned int lanes;	/* ports drawn per process (default 64) */
	const char *title;	/* NULL: "porttrace report" */
};

/* The figures of one time bucket of one destination. */
struct report_bucket {
	unsigned int state[EXH_STATES];	/* at the bucket's end */
	unsigned int shared, capacity;	/* at the bucket's end */
	unsigned int occupancy;		/* at the bucket's end */
	unsigned int max;		/* the highest occupancy within the bucket */
	unsigned long long failures;	/* within the bucket */
	unsigned long long lat_n;	/* connect() calls that ended within it */
	__u64 lat_p50_ns, lat_p99_ns;	/* of those (merged buckets: see README) */
};

/* One destination followed over time. */
struct report_series {
	struct exhaustion_sample last;	/* its figures at the last sample */
	__u32 lat_prev[EXH_LAT_BUCKETS];	/* its latency counts at the last sample */
	struct report_bucket *b;	/* REPORT_BUCKETS, valid up to report's nb */
	unsigned int since;		/* first bucket it was seen in */
	struct report_bucket carry;	/* the open bucket's part that halving closed */
	bool has_carry;
	double full_in_s;		/* exhaustion's forecast at the end; < 0: none */
};

/* A socket that listened (or held a UDP port) during the run. */
struct report_listener {
	__u64 cookie;
	struct pt_owner owner;
	bool owner_known;
	struct pt_sock sk;
	bool reserved, in_range, existing;
	__u64 from_ns, until_ns;	/* until: 0 while it still listens */
};

struct report;

struct report *report__new(const struct report_opts *o, struct exhaustion *ex, struct timeline *tl);
void report__free(struct report *r);
/* The consumers it reads, when they are made after it (a live run checks
 * its file before anything else). */
void report__attach(struct report *r, struct exhaustion *ex, struct timeline *tl);

/* The run's start on both clocks (the log header's), for relative seconds
 * and wall-clock times; without it, the first event's time and no wall clock. */
void report__set_start(struct report *r, __u64 start_mono_ns, __u64 start_realtime_ns);
void report__set_host(struct report *r, const char *host);

/* The consumer (a pt_event_fn): before exhaustion__event() of the same event. */
int report__event(void *r, const struct pt_event *ev);

/* The stream has ended: the last sample. */
void report__finish(struct report *r);

/* Write the HTML to path, whole or not at all: into a new file beside it,
 * renamed over path once complete. 0, or -errno (said on stderr). */
int report__write(struct report *r, const char *path);

/* A file beside path that report__write() will write to: made now, so that
 * an unusable path is said before anything else is done. 0 or -errno (said). */
int report__prepare(struct report *r, const char *path);

/* ---- the aggregation, for report_html.c and tests ---- */

struct report_view {
	__u64 t0_ns, end_ns;		/* CLOCK_MONOTONIC: the start, the last event */
	__u64 realtime0_ns;		/* wall clock at t0; 0 when unknown */
	const char *host;		/* NULL when unknown */
	__u64 width_ns;			/* of a bucket */
	unsigned int nb;		/* buckets */
	struct report_series **dests;	/* the fullest first; ndests drawn */
	unsigned int ndests, dests_seen;	/* drawn; ever seen */
	unsigned long long dests_dropped;	/* followed for a while, then replaced */
	const struct report_listener *listeners;	/* the ones to look at first, first */
	unsigned int nlisteners;
	unsigned long long listeners_dropped;	/* past REPORT_LISTENERS */
	struct exhaustion_status st;	/* events, lost */
	const struct report_opts *o;
};

/* The view as of now; valid until the next event. */
void report__view(struct report *r, struct report_view *v);
struct timeline *report__timeline(struct report *r);

/* The bucket of the view that time ts falls in (the first or last one when
 * ts is outside the run). */
unsigned int report__bucket_of(const struct report_view *v, __u64 ts);

/* Render the view as HTML to f (report_html.c). 0 or -EIO. */
int report_html__write(FILE *f, const struct report_view *v, struct timeline *tl);

/* s (at most max bytes) as HTML text, also safe inside a quoted attribute:
 * made safe for people by escape__text(), then markup as entities. Every
 * string of the page goes through it. */
void report_html__text(FILE *f, const char *s, size_t max);

/* porttrace report FILE... -o report.html */
int report__main(int argc, char **argv);

#endif /* PT_REPORT_H */
