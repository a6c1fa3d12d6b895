/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * pipeline: the one chain every entry point builds. Two sources: kernel
 * records (through the decoder, which makes every derived event once) or
 * events read back from a log (which holds the derived events already, so
 * they pass as they are and nothing is derived twice). Then the consumers,
 * in order: the output stream, timelines, exhaustion accounting, and any
 * added with pipeline__add(); they only account.
 *
 * A live run also ticks the pipeline: the decoder's due events, the lost
 * count, and with exhaustion the check against the kernel's socket table
 * (on a thread of its own, so the ring never waits for it) and the snapshot
 * records of the JSON stream.
 */
#ifndef PT_PIPELINE_H
#define PT_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include "event.h"

struct output;
struct timeline;
struct exhaustion;
struct report;
struct tracer_opts;
struct decoder;
struct run_stats;
struct cgroups;

struct pipeline_opts {
	struct output *out;		/* NULL: no stream */
	struct timeline *tl;		/* NULL: no timelines */
	struct report *rep;		/* NULL: no HTML report; fed before exhaustion */
	struct exhaustion *ex;		/* NULL: no exhaustion accounting */
	bool checks;			/* live: check ex against the socket table */
	/* The filters the kernel applies, for the sockets found at start-up;
	 * NULL: every one. */
	const struct tracer_opts *filter;
	bool snapshots;			/* exhaustion records into out (JSON) */
	bool live;			/* the kernel is there: read its socket table */
	bool no_events;			/* --no-events: out gets no events */
	__u32 netns;			/* --netns: the one namespace consumers hear; 0: all */
	struct cgroups *cg;		/* --cgroup for the start-up snapshot (borrowed) */
};

struct pipeline;

/* The consumers stay the caller's: pipeline__free() frees none of them. */
struct pipeline *pipeline__new(const struct pipeline_opts *o);
void pipeline__free(struct pipeline *p);

/* Another consumer, after those of the options. 0 or -ENOMEM. */
int pipeline__add(struct pipeline *p, pt_event_fn fn, void *ctx);

/* The decoder kernel records go through (for the tracer and replays). */
struct decoder *pipeline__decoder(struct pipeline *p);

/* The tracer the records come from: a socket of the start-up snapshot that
 * is only bound has its release watched for (tracer__watch_release()). */
struct tracer;
void pipeline__set_tracer(struct pipeline *p, struct tracer *tr);

/* One event to every consumer: a pt_event_fn, for the decoder, a log
 * reader, or anything else that has events. */
int pipeline__event(void *p, const struct pt_event *ev);

/* One raw kernel record: decoded, its events to every consumer. */
int pipeline__record(struct pipeline *p, const void *data, size_t len);

/* A socket held before tracing began (a sockdiag__snapshot() callback):
 * filtered as the kernel filters events, remembered by the decoder. */
int pipeline__existing(void *p, const struct pt_event *ev);

/*
 * Live start-up, once the hooks are attached: every socket of the kernel's
 * table through pipeline__existing(). Reading it (every /proc/PID/fd, each
 * namespace in turn) takes seconds on a busy host, and a storm fills the
 * ring in a fraction of one: the table is read on a thread of its own while
 * this one drains the ring, holding its records in the decoder and decoding
 * them after the table, so that each socket the table has is known before
 * the first record about it. 0, or sockdiag__snapshot()'s error (ports held
 * before now are unknown), or the consumers' first.
 */
int pipeline__snapshot(struct pipeline *p);

/* Live: what is due at now_ns (CLOCK_MONOTONIC): derived events, and with
 * exhaustion the check and the snapshot record when their interval is up. */
int pipeline__tick(struct pipeline *p, __u64 now_ns);

/* Live: the kernel's lost count is now total; a change is a lost event. */
int pipeline__lost(struct pipeline *p, unsigned long long total, __u64 now_ns);

/* The stream has ended (a live run stopped, a log was read to its end):
 * the decoder's last derived events, and the final exhaustion record. */
int pipeline__end(struct pipeline *p, __u64 now_ns);

/* What the trailer says of the stream: lost, bad and aged records. */
void pipeline__stats(const struct pipeline *p, struct run_stats *st);

#endif /* PT_PIPELINE_H */
