/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * What the rooms of exhaustion share, and only they: the accounting
 * (exhaustion.c: sockets, destinations, pools, counts, peaks, warnings),
 * the reconciliation with the kernel's socket table (exhaustion_check.c),
 * the figures (exhaustion_figures.c: rows, processes, percentiles) and
 * their presentation (exhaustion_report.c: JSON record, text report, CLI).
 * Rates and histograms are rooms of their own (hist.c and the rates here).
 */
#ifndef PT_EXHAUSTION_INT_H
#define PT_EXHAUSTION_INT_H

#include <stdbool.h>
#include "exhaustion.h"
#include "hist.h"
#include "slab.h"
#include "socktab.h"

#define NS_PER_S 1000000000ULL

#define RATE_WINDOW 10		/* seconds of event time behind rates and forecasts */
#define RATE_SLOTS (RATE_WINDOW + 1)	/* the window, and the second filling up */
#define LAT_WINDOWS 8		/* latency windows remembered per destination */
#define MAX_SOCKS (1u << 22)
#define MAX_PROCS (1u << 20)
#define MAX_DESTS (1u << 20)
#define MAX_FAIL_PROCS 8	/* failing processes told apart per destination */
/* A destination that held nothing this long (event time) is retired: its
 * rates are zero by then, and its failures go into its pool's totals. */
#define DEST_RETIRE_NS (60 * NS_PER_S)
#define MAX_WARNINGS 64		/* warnings kept for the report; all are counted */
#define SNAP_DESTS 32		/* destinations per pool in a periodic record */
#define SNAP_PROCS 8		/* processes per pool in a record */
#define REPORT_PROCS 5
#define REPORT_DESTS 20		/* destinations per pool in the text report */
#define DEST_LEN (2 * INET6_ADDRSTRLEN + 16)	/* "laddr > [raddr]:port" */

/* Ups and downs of an occupancy, per second of event time: slot s %
 * RATE_SLOTS holds second s while s is among the RATE_SLOTS up to the newest
 * counted, last (CLOCK_MONOTONIC seconds + 1, 0 before the first: 32 bits
 * last 136 years of uptime). One second stamp, not one per slot: it is
 * paid per destination. */
struct rate {
	__u32 last;
	__u32 up[RATE_SLOTS], down[RATE_SLOTS];
};

/* A process, while a socket or a destination's failures name it. */
struct xproc {
	__u32 pid;
	__u64 start_ns;
	__u64 cgroup;
	char comm[PT_TASK_COMM_LEN];
	unsigned int refs;
	size_t idx;		/* in e->procs */
};

struct xfail {
	struct xproc *proc;	/* NULL: every process past MAX_FAIL_PROCS */
	unsigned long long n;
};

/* A destination's failures in detail: out of line, as most destinations
 * never see one and every byte of struct xdest is paid per destination. */
struct xfails {
	unsigned long long by[EXH_ERRS];
	__u64 first_ns, last_ns;
	int err;		/* the last one's */
	unsigned int n;		/* of fails */
	struct xfail fails[MAX_FAIL_PROCS];
};

/* The p99 latency of a destination's last closed windows: out of line, as
 * a short-lived destination never closes one. */
struct xwins {
	__u64 p99[LAT_WINDOWS];
	unsigned long long n;	/* windows closed */
};

struct xpool;

/* A destination of connect(), or a pool's own row (any). Paid per
 * destination, so packed: a host may talk to hundreds of thousands. */
struct xdest {
	struct xdest *hnext;	/* same hash */
	struct xpool *pool;
	__u64 id;		/* 1.. : index key of (destination, port) */
	__u8 laddr[16], raddr[16];
	__u16 rport;
	__u8 family;
	bool any;
	bool warned;
	bool idle;		/* in e->idle: holds nothing since idle_ns */
	bool bucketed, bwarned;	/* in the pool's armed or warned lists */
	unsigned int own;	/* any: unused, the pool's shared count applies */
	unsigned int state[EXH_STATES];
	unsigned int peak;
	unsigned int nsocks;	/* sockets that name it: it stays while any does */
	__u32 row;		/* scratch: its row in the figures */
	__u32 idx;		/* in pool->dests */
	unsigned int own_then;	/* see own_seq */
	__u64 peak_ns;
	struct rate rate;
	unsigned int bown;	/* see bprev */
	unsigned long long allocs, releases;
	unsigned long long failures;
	struct xfails *fail;	/* NULL until the first failure */
	struct hist lat, win;	/* whole run; current window */
	__u64 lat_sum_ns;	/* of lat, for Prometheus's _sum */
	__u64 win_idx;
	struct xwins *wins;	/* NULL until a window closed */
	struct xdest *iprev, *inext;	/* e->idle, by idle_ns */
	__u64 idle_ns;
	/*
	 * The peak, without visiting every destination when the shared count
	 * moves: own_then is what it held since the pool's shared change
	 * own_seq, and the pool's peak stack says the most shared since.
	 */
	__u64 own_seq;
	/* Among the pool's armed or warned destinations, by own count (bown):
	 * those a move of the shared count takes across the threshold. */
	struct xdest *bprev, *bnext;
};

/* A shared count reached first at change seq_first and last at seq_last,
 * kept while no later change went higher: a stack, strictly falling from
 * bottom to top, so at most one entry per count. */
struct shared_peak {
	__u64 seq_first, ts_first, seq_last, ts_last;
	unsigned int val;
};

struct xns {
	__u32 inode;
	__u16 lo, hi;		/* 0, 0 until an event shows the range */
	__u64 range_ns;		/* event time the range was seen to change */
	__u64 *reserved;	/* 65536 bits; NULL while none is known */
	unsigned int reserved_in_range;
	struct xpool *pools[2];	/* TCP, UDP */
};

struct xsock;

/* What a check against the kernel's table found. */
struct pool_check {
	bool reachable;		/* the check could read the namespace's table */
	unsigned long kernel, events;	/* ports counted by each */
	unsigned long missing, extra;	/* in the kernel only, in the events only */
	unsigned long persistent;	/* different at the check before, too */
	unsigned long tw_gone;	/* time-wait sockets found gone early */
	/* Time-wait sockets accepted sockets left, on listeners' ports: no
	 * ephemeral port, but each blocks a bind() of its port. */
	unsigned long srv_kernel, srv_events, srv_missing, srv_extra;
};

struct xpool {
	struct xns *ns;
	__u8 proto;
	struct xdest any;
	unsigned int shared;	/* distinct shared ports counted */
	unsigned int server_tw;	/* XC_SERVER sockets */
	struct socktab *port_refs;	/* port + 1 -> counted shared sockets on it */
	struct xdest **dests;
	size_t ndests, cap_dests;
	struct xsock *socks;	/* every socket of the pool */
	struct pool_check chk;	/* the last check, this pool's part */
	__u64 seq;		/* changes of the shared count */
	struct shared_peak *peaks;
	size_t npeaks, cap_peaks;
	unsigned int threshold;	/* the least occupancy that warns; 0: no capacity */
	struct socktab *armed, *warned;	/* own count -> struct xdest * list */
	unsigned long long retired, retired_failures;	/* destinations retired */
};

enum xclass {
	XC_DEST,	/* connect(): counts for its destination */
	XC_SHARED,	/* bind(), listen(), UDP: counts for all */
	XC_SERVER,	/* the time-wait socket of an accepted one: its listener's
			 * port toward one peer, never an ephemeral port */
};

struct xsock {
	struct xsock *prev, *next;
	__u64 cookie;
	struct xpool *pool;
	struct xdest *dest;
	struct xproc *proc;
	__u16 lport;
	__u8 cls;
	__u8 state;		/* enum exhaustion_state */
	bool counted;
	bool noted;		/* its allocation is in the rates */
	bool seeded;		/* found in the kernel's table at start-up */
};

struct warning {
	__u64 ts;
	__u32 netns;
	__u8 proto, family;
	bool any;
	__u8 laddr[16], raddr[16];
	__u16 rport;
	unsigned int occupancy, capacity;
};

struct exhaustion {
	struct exhaustion_opts o;
	__u64 interval_ns;
	struct socktab *socks;		/* cookie -> struct xsock * */
	struct socktab *nss;		/* netns inode -> struct xns * */
	struct socktab *dest_idx;	/* destination hash -> struct xdest * chain */
	struct socktab *port_idx;	/* dest id << 16 | port -> struct xsock * */
	struct socktab *by_pid;		/* pid -> latest struct xproc * */
	struct socktab *listen;		/* netns << 17 | port + 1: listening (start-up) */
	struct xns **nsv;
	size_t nns, cap_nsv;
	struct xpool **pools;
	size_t npools, cap_pools;
	struct xproc **procs;
	size_t nprocs, cap_procs;
	__u64 next_dest_id;
	size_t ndests;			/* alive, every pool */
	struct xdest *idle_head, *idle_tail;	/* by idle_ns */
	struct xproc *fresh;		/* made by this event; freed if unused */
	__u64 first_ns, last_ns, base_ns;
	unsigned long long events, lost, untracked;
	struct warning warns[MAX_WARNINGS];
	unsigned long nwarn;
	__u64 last_snap_ns, last_check_ns;
	bool checked;
	__u64 check_ns;
	struct pool_check chk;		/* the last check, all reachable pools */
	unsigned long long tw_gone;	/* found by every check so far */
	unsigned long check_unreachable;	/* ports counted in namespaces it could not read */
	bool check_persistent_said;	/* warned; again only after it agreed once */
	struct socktab *mismatch;	/* cookies that differed at the last check */
	struct slab *dest_slab;		/* every struct xdest but the pools' own */
	struct cgroups *cg;		/* names in the report; NULL: none */
	__u64 check_dump_ns, check_apply_ns;	/* what the last check cost */
};


/* exhaustion.c */
unsigned int pool_capacity(const struct xpool *p);
struct xpool *pool_find(const struct exhaustion *e, __u32 netns, __u8 proto);
struct xsock *sock_get(struct exhaustion *e, __u64 cookie);
/* The destination of pool p with these addresses (16 bytes each, as
 * stored), or NULL: by its hash, not by a walk. */
struct xdest *dest_find(const struct exhaustion *e, const struct xpool *p, __u8 family,
			const __u8 *laddr, const __u8 *raddr, __u16 rport);
bool classify_existing(struct socktab *listen, const struct pt_event *ev, enum xclass *cls,
		       int *state);
void dest_peak(const struct xdest *d, unsigned int *peak, __u64 *peak_ns);
void rate_get(const struct exhaustion *e, const struct rate *r, __u64 now, double *up,
	      double *down);

/* exhaustion_figures.c: the processes of a pool by ports held, then
 * failures; *out to be freed. */
size_t pool_procs(const struct xpool *p, __u64 now, struct exhaustion_proc **out);

#endif /* PT_EXHAUSTION_INT_H */
