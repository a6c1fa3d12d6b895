/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * sockdiag: the kernel's socket table, as ss(8) reads it (NETLINK_SOCK_DIAG),
 * in every network namespace of the host, with the processes that hold each
 * socket. Used at start-up, so that ports held before tracing began are
 * known, and periodically to check counts made from events.
 *
 * The namespaces are those of every process (/proc/PID/ns/net) and those
 * ip-netns(8) keeps mounted (/run/netns), which may hold only time-wait
 * sockets of processes long gone.
 */
#ifndef PT_SOCKDIAG_H
#define PT_SOCKDIAG_H

#include <stddef.h>
#include "event.h"

/*
 * Deliver every TCP (all states, TIME_WAIT included) and UDP socket as a
 * PT_EV_PORT event of kind PT_PORT_EXISTING: sk filled (netns, cookie as
 * the kernel's socket cookie, family, proto, addresses, ports, the
 * namespace's ephemeral range), newstate = the TCP state (TCP_CLOSE for
 * UDP), owner from /proc/PID/fd when a process holds it (PT_F_OWNER_KNOWN),
 * ts_ns = now (CLOCK_MONOTONIC). Returns 0 or -errno.
 *
 * Also:
 *  - flags has PT_F_RESERVED when the port is in the namespace's
 *    ip_local_reserved_ports;
 *  - for a time-wait socket (no process holds it; its state reads
 *    TIME_WAIT, or FIN_WAIT2 for an orphan the kernel folded into one),
 *    latency_ns is the time left until the kernel frees it, from
 *    idiag_expires (1 ms resolution); 0 for every other socket;
 *  - owner.start_ns comes from /proc/PID/stat in clock ticks (10 ms) of
 *    CLOCK_BOOTTIME, moved to CLOCK_MONOTONIC with today's offset between
 *    the two clocks: match it against the hooks' start_ns (ns, monotonic)
 *    with a tolerance of 20 ms. owner.tid is the pid; cgroup_id is 0.
 */
int sockdiag__snapshot(pt_event_fn fn, void *ctx);

/* sockdiag__dump() flags. */
#define SOCKDIAG_OWNERS (1u << 0)	/* find owners: scans every /proc/PID/fd */

/* The same dump; without SOCKDIAG_OWNERS, no owner is looked up (faster,
 * enough to count). sockdiag__snapshot() is SOCKDIAG_OWNERS. */
int sockdiag__dump(unsigned int flags, pt_event_fn fn, void *ctx);

/* The ephemeral range of the calling thread's namespace; 0-0 when unreadable. */
void sockdiag__own_range(__u16 *lo, __u16 *hi);

/*
 * The ephemeral range and the reserved ports (one bit per port, 65536 bits;
 * may be NULL) of the namespace with inode number netns, as its sysctls say
 * now. 0, -ENOENT when no process or mount leads to it any more, or -errno.
 */
int sockdiag__netns_ports(__u32 netns, __u16 *lo, __u16 *hi, __u64 *reserved);

/*
 * The socket the kernel has now on the addresses and ports of each of these
 * n sockets of namespace netns: its cookie in found[i], 0 when there is none.
 * Asked for one by one: unlike a dump, which can pass over a socket that
 * moves while it runs, the answer is exact. A socket bound to a device
 * (SO_BINDTODEVICE) is not found this way. 0, -ENOENT when no process or
 * mount leads to netns, or -errno.
 */
int sockdiag__lookup(__u32 netns, const struct pt_sock *socks, size_t n, __u64 *found);

/* The inode numbers of the namespaces a dump walks now: *v to be freed.
 * A namespace not among them (deleted, or held only by an open file) has
 * a socket table no dump can read. 0 or -errno. */
int sockdiag__namespaces(__u32 **v, size_t *n);

#endif /* PT_SOCKDIAG_H */
