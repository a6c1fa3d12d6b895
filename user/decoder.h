/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * decoder: ring-buffer records in, events out. Checks every record's size
 * and type before reading it, unfolds what the kernel packed into one record
 * (a transition that also released a port), completes release records from
 * the socket table, and makes every derived event, once, for every consumer:
 *  - the end of each time-wait hold (60 s after it began; for a time-wait
 *    socket found at start-up, when the kernel said it had left);
 *  - the alloc-fail of a connect() that found no port, when its syscall
 *    exit (which says why) did not come within PT_NO_PORT_WAIT_NS;
 *  - the release a UDP disconnect gave back, when the next port shows it.
 * Derived events carry PT_F_COMPUTED.
 *
 * Its tables (owners of connecting sockets, children, sockets whose release
 * record carries no address) forget an entry that neither a record nor
 * decoder__keep() touched for two ages (PT_DECODER_AGE_NS): its closing
 * record was lost or filtered out. They count what they forgot.
 */
#ifndef PT_DECODER_H
#define PT_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include "event.h"

/* TCP_TIMEWAIT_LEN: fixed in the kernel, with no tracepoint at its end. */
#define PT_TIMEWAIT_NS (60ULL * 1000000000ULL)

/* An entry of a decoder table not touched for between one and two of these
 * (record time) is forgotten: its socket's closing record never came. */
#define PT_DECODER_AGE_NS (3600ULL * 1000000000ULL)

struct decoder;

struct decoder *decoder__new(void);
void decoder__free(struct decoder *d);

/*
 * Decode one record and pass its events to fn. Returns fn's first non-zero
 * result, 0 otherwise; a malformed record is counted and skipped.
 */
int decoder__record(struct decoder *d, const void *data, size_t len, pt_event_fn fn, void *ctx);

/*
 * Hold: from decoder__hold() on, records are kept as they come, in order,
 * not decoded. decoder__release() decodes up to max of them, and once none
 * is left stops holding; records that come meanwhile join the end. The live
 * run holds while it reads the socket table at start-up, and releases in
 * batches with the ring drained between them, so that the ring never waits
 * and yet every socket of the table is known before the first record after
 * it. What is kept is what came in that time.
 */
void decoder__hold(struct decoder *d);
bool decoder__holding(const struct decoder *d);
int decoder__release(struct decoder *d, size_t max, pt_event_fn fn, void *ctx);

/* A socket seen in the kernel's socket table at start-up: a UDP one, or a
 * TCP one only bound, gives its port back through a release record this
 * completes; its owner goes on to its later records; it holds its port; a
 * time-wait one gets its computed release when the kernel said it would go. */
void decoder__remember(struct decoder *d, const struct pt_event *ev);

/* Is ev (of the start-up snapshot) a TCP socket only bound, whose release
 * the kernel must be told to watch for (tracer__watch_release())? */
bool decoder__prebound(const struct pt_event *ev);

/* The kernel still has socket cookie (a dump of its table says so): what
 * the tables keep of it is not forgotten, however quiet it is. */
void decoder__keep(struct decoder *d, __u64 cookie);

/* The time-wait socket cookie is gone before its time (a check found it
 * so, and said so with an event of its own): its queued release is dropped. */
void decoder__tw_gone(struct decoder *d, __u64 cookie);

/* Emit the derived events due at now_ns (CLOCK_MONOTONIC). */
int decoder__tick(struct decoder *d, __u64 now_ns, pt_event_fn fn, void *ctx);

/* The stream has ended: no syscall exit is coming any more, so every
 * connect() still waiting for one failed. Time-wait holds stay open. */
int decoder__end(struct decoder *d, pt_event_fn fn, void *ctx);

unsigned long long decoder__bad_records(const struct decoder *d);
/* Table entries forgotten because their closing record never came. */
unsigned long long decoder__aged(const struct decoder *d);
/* Entries held now, all tables: what the decoder's memory is made of. */
size_t decoder__entries(const struct decoder *d);

#endif /* PT_DECODER_H */
