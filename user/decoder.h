/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * decoder: ring-buffer records in, events out. Checks every record's size
 * and type before reading it, unfolds what the kernel packed into one record
 * (a transition that also released a port), completes release records from
 * the socket table, and emits the computed end of each time-wait hold.
 */
#ifndef PT_DECODER_H
#define PT_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include "event.h"

/* TCP_TIMEWAIT_LEN: fixed in the kernel, with no tracepoint at its end. */
#define PT_TIMEWAIT_NS (60ULL * 1000000000ULL)

struct decoder;

struct decoder *decoder__new(void);
void decoder__free(struct decoder *d);

/*
 * Decode one record and pass its events to fn. Returns fn's first non-zero
 * result, 0 otherwise; a malformed record is counted and skipped.
 */
int decoder__record(struct decoder *d, const void *data, size_t len, pt_event_fn fn, void *ctx);

/* A socket seen in the kernel's socket table at start-up: a UDP one, or a
 * TCP one only bound, gives its port back through a release record this
 * completes; its owner goes on to its later records; it holds its port. */
void decoder__remember(struct decoder *d, const struct pt_event *ev);

/* Is ev (of the start-up snapshot) a TCP socket only bound, whose release
 * the kernel must be told to watch for (tracer__watch_release())? */
bool decoder__prebound(const struct pt_event *ev);

/* The time-wait socket cookie is gone before its time (a check found it
 * so, and said so with an event of its own): its queued release is dropped. */
void decoder__tw_gone(struct decoder *d, __u64 cookie);

/* Emit the time-wait expiries due at now_ns (CLOCK_MONOTONIC). */
int decoder__tick(struct decoder *d, __u64 now_ns, pt_event_fn fn, void *ctx);

unsigned long long decoder__bad_records(const struct decoder *d);

#endif /* PT_DECODER_H */
