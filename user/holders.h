/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * holders: who holds each port of each namespace now, as the events tell
 * it: listeners (and their holder), connections, sockets only bound, and
 * time-wait sockets with the end of the last one. The decoder keeps it, so
 * that a bind() failing with EADDRINUSE is explained in its own event.
 *
 * Bounded by what is live: one entry per socket that holds a port, one
 * per port held, each freed when its last socket lets go (a time-wait
 * socket at its end).
 */
#ifndef PT_HOLDERS_H
#define PT_HOLDERS_H

#include <stdbool.h>
#include "event.h"

struct holders;

struct holders *holders__new(void);
void holders__free(struct holders *h);

/* Account one event, as the decoder delivers it (a release, time-wait,
 * listen, connection, or a socket of the start-up snapshot). */
void holders__event(struct holders *h, const struct pt_event *ev);

/* Forget socket cookie, whatever it held (a time-wait socket found gone). */
void holders__forget(struct holders *h, __u64 cookie);

/* What holds (netns, proto, port) at now_ns; false when nothing does. */
bool holders__lookup(struct holders *h, __u32 netns, __u8 proto, __u16 port, __u64 now_ns,
		     struct pt_held *out);

/* A listener of a port, and who holds it. */
struct holders_listener {
	__u64 cookie;
	struct pt_owner owner;	/* pid 0: unknown */
	__u64 checked_ns;	/* event time its holder was last found alive */
};

/* The listener on TCP (netns, port), to read and update in place until the
 * next call; NULL when none is known. */
struct holders_listener *holders__listener(struct holders *h, __u32 netns, __u16 port);

#endif /* PT_HOLDERS_H */
