/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The event: what every consumer (printer, log writer, timelines, exhaustion
 * accounting) receives, whether it came from the kernel through the decoder
 * or from a log file through the log reader.
 */
#ifndef PT_EVENT_H
#define PT_EVENT_H

#include <stdbool.h>
#include "porttrace.h"

/* Kernel TCP_* numbers (include/net/tcp_states.h), as records carry them. */
enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT,
	TCP_SYN_RECV,
	TCP_FIN_WAIT1,
	TCP_FIN_WAIT2,
	TCP_TIME_WAIT,
	TCP_CLOSE,
	TCP_CLOSE_WAIT,
	TCP_LAST_ACK,
	TCP_LISTEN,
	TCP_CLOSING,
	TCP_NEW_SYN_RECV,
};

/* A connect() that reached CLOSE without a port waits this long for the
 * alloc-fail that says why (its syscall exit, right behind it); none comes
 * without tracefs, and the kernel's reason, no free port, says it then. */
#define PT_NO_PORT_WAIT_NS 1000000000ULL

enum pt_ev_type {
	PT_EV_STATE = 1,	/* TCP transition: oldstate -> newstate */
	PT_EV_PORT,		/* port fact: kind */
	PT_EV_LOST,		/* records the kernel could not queue */
};

/*
 * What held a port when a bind() of it failed with EADDRINUSE, from what
 * porttrace saw (the decoder's port holders): the answer to "why can my
 * service not start?". Counts are of sockets on the port in the namespace,
 * any local address.
 */
struct pt_held {
	__u32 listeners;	/* TCP listening, or UDP bound to the port asked for */
	__u32 connections;	/* TCP connections on it, client or accepted */
	__u32 bound;		/* bound only: neither listening nor connected */
	__u32 time_wait;	/* time-wait sockets on it (accepted ones included) */
	__u64 tw_end_ns;	/* when the last of them ends (CLOCK_MONOTONIC) */
	struct pt_owner listener;	/* who holds a listener; pid 0: unknown */
};

struct pt_event {
	enum pt_ev_type type;
	__u32 cpu;
	__u64 ts_ns;		/* CLOCK_MONOTONIC */
	struct pt_owner owner;
	struct pt_sock sk;
	__u8 oldstate;		/* STATE */
	__u8 newstate;
	__u8 kind;		/* PORT: enum pt_port_kind */
	__u8 reason;		/* enum pt_reason */
	__u8 opts;		/* PT_OPT_* */
	__u16 req_port;
	__u32 flags;		/* PT_F_* */
	__s32 err;		/* positive errno */
	__u64 latency_ns;
	__u64 lost;		/* LOST: new since the previous LOST event */
	__u64 lost_total;
	/* PT_F_HELD (a bind-fail): what held the port; valid while the event
	 * is being delivered. */
	const struct pt_held *held;
};

/* Every consumer has this shape; returning non-zero stops the pipeline. */
typedef int (*pt_event_fn)(void *ctx, const struct pt_event *ev);

/* sockdiag reads start times from /proc in 10 ms ticks; the kernel hooks
 * have them to the nanosecond. Within this much, it is the same process. */
#define PT_START_SLACK_NS (20ULL * 1000000)

/* Whether two start times (0: unknown) name the same process. */
static inline bool pt_owner_same_start(__u64 a, __u64 b)
{
	return !a || !b || (a > b ? a - b : b - a) <= PT_START_SLACK_NS;
}

static inline bool pt_event_port_known(const struct pt_event *ev)
{
	return !(ev->flags & PT_F_PORT_PENDING) && ev->sk.lport;
}

/* Is the local port inside the ephemeral range the event carries? An event
 * without a range (range_hi 0) says no. */
static inline bool pt_event_in_range(const struct pt_event *ev)
{
	return ev->sk.range_hi && ev->sk.lport >= ev->sk.range_lo && ev->sk.lport <= ev->sk.range_hi;
}

#endif /* PT_EVENT_H */
