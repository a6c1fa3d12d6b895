/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * sockdiag: the kernel's socket table, as ss(8) reads it (NETLINK_SOCK_DIAG),
 * in every network namespace of the host, with the processes that hold each
 * socket. Used at start-up, so that ports held before tracing began are
 * known, and periodically to check counts made from events.
 */
#ifndef PT_SOCKDIAG_H
#define PT_SOCKDIAG_H

#include "event.h"

/*
 * Deliver every TCP (all states, TIME_WAIT included) and UDP socket as a
 * PT_EV_PORT event of kind PT_PORT_EXISTING: sk filled (netns, cookie as
 * the kernel's socket cookie, family, proto, addresses, ports, the
 * namespace's ephemeral range), newstate = the TCP state (TCP_CLOSE for
 * UDP), owner from /proc/PID/fd when a process holds it (PT_F_OWNER_KNOWN),
 * ts_ns = now (CLOCK_MONOTONIC). Returns 0 or -errno.
 */
int sockdiag__snapshot(pt_event_fn fn, void *ctx);

#endif /* PT_SOCKDIAG_H */
