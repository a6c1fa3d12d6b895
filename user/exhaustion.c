// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Each socket that holds a port, or is about to, is one struct xsock found
 * by cookie. Its count goes to its destination (a TCP connect()) or to its
 * pool's shared ports (bind(), listen(), UDP), and only while its port lies
 * in the range and is not reserved. A connect() is followed from the
 * CLOSE -> SYN_SENT transition that announces it (the kernel picks its port
 * right after, KERNEL-NOTES) and counted once its port is known.
 *
 * Counts change by "un-count, change, count again" (sock_begin/sock_end),
 * so a change of state, port, range or reserved ports can never leave a
 * count behind; peaks, warnings and rates are settled in sock_end.
 */
#define _GNU_SOURCE
#include <argp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "exhaustion.h"
#include "array.h"
#include "cgroup.h"
#include "escape.h"
#include "log.h"
#include "logreader.h"
#include "names.h"
#include "options.h"
#include "output.h"
#include "sockdiag.h"
#include "socktab.h"

#define NS_PER_S 1000000000ULL

#define RATE_WINDOW 10		/* seconds of event time behind rates and forecasts */
#define RATE_SLOTS 16
#define HIST_SUB_BITS 3		/* 8 buckets per power of two */
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_MAX_EXP 40		/* latencies clamp at 2^40 ns, 18 minutes */
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 1) * HIST_SUB)
#define LAT_WINDOWS 8		/* latency windows remembered per destination */
#define MAX_SOCKS (1u << 22)
#define MAX_PROCS (1u << 20)
#define MAX_DESTS (1u << 20)
#define MAX_FAIL_PROCS 8	/* failing processes told apart per destination */
#define MAX_WARNINGS 64		/* warnings kept for the report; all are counted */
#define SNAP_DESTS 32		/* destinations per pool in a periodic record */
#define SNAP_PROCS 8		/* processes per pool in a record */
#define REPORT_PROCS 5
#define DEST_LEN (2 * INET6_ADDRSTRLEN + 16)	/* "laddr > [raddr]:port" */

struct hist {
	unsigned long long count;
	__u64 sum_ns;
	__u32 n[HIST_BUCKETS];
};

/* Ups and downs of an occupancy, per second of event time. */
struct rate {
	__u64 sec[RATE_SLOTS];
	__u32 up[RATE_SLOTS], down[RATE_SLOTS];
};

struct xproc {
	__u32 pid;
	__u64 start_ns;
	__u64 cgroup;
	char comm[PT_TASK_COMM_LEN];
};

struct xfail {
	struct xproc *proc;	/* NULL: every process past MAX_FAIL_PROCS */
	unsigned long long n;
};

struct xpool;

/* A destination of connect(), or a pool's own row (any). */
struct xdest {
	struct xdest *hnext;	/* same hash */
	struct xpool *pool;
	__u64 id;		/* 1.. : index key of (destination, port) */
	bool any;
	__u8 family;
	__u8 laddr[16], raddr[16];
	__u16 rport;
	unsigned int own;	/* any: unused, the pool's shared count applies */
	unsigned int state[EXH_STATES];
	unsigned int peak;
	__u64 peak_ns;
	bool warned;
	struct rate rate;
	unsigned long long allocs, releases;
	unsigned long long failures;
	unsigned long long fail_by[EXH_ERRS];
	__u64 first_fail_ns, last_fail_ns;
	int fail_err;
	struct xfail fails[MAX_FAIL_PROCS];
	unsigned int nfails;
	struct hist *lat, *win;	/* whole run; current window */
	__u64 win_idx;
	__u64 win_p99[LAT_WINDOWS];	/* of the last closed windows */
	unsigned long long nwins;
	size_t row;		/* scratch: its row in the figures */
	unsigned int sc_due[EXH_STATES];	/* scratch: counted, but past their end */
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
};

enum xclass {
	XC_DEST,	/* connect(): counts for its destination */
	XC_SHARED,	/* bind(), listen(), UDP: counts for all */
	XC_LIMBO,	/* a connect() that found no port; waits for its failure */
	XC_SERVER,	/* the time-wait socket of an accepted one: its listener's
			 * port toward one peer, never an ephemeral port */
};

struct xsock {
	struct xsock *prev, *next;
	__u64 cookie;
	struct xpool *pool;
	struct xdest *dest;
	struct xproc *proc;
	__u64 expire_ns;	/* a time-wait socket from the start-up snapshot */
	__u16 lport;
	__u8 cls;
	__u8 state;		/* enum exhaustion_state */
	bool counted;
	bool noted;		/* its allocation is in the rates */
	bool seeded;		/* found in the kernel's table at start-up */
};

/* Work at a given event time: a time-wait socket of the start-up snapshot
 * expires, a failed connect() stops waiting for its alloc-fail. */
struct due {
	__u64 ts;
	__u64 cookie;
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
	struct due *due;		/* a min-heap by ts */
	size_t ndue, cap_due;
	__u64 next_dest_id;
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
	struct cgroups *cg;		/* names in the report; NULL: none */
};

/* ---- small tools ---- */

static unsigned int hist_bucket(__u64 v)
{
	int exp;

	if (v < HIST_SUB)
		return v;
	if (v >= 1ULL << HIST_MAX_EXP)
		v = (1ULL << HIST_MAX_EXP) - 1;
	exp = 63 - __builtin_clzll(v);
	return (exp - HIST_SUB_BITS + 1) * HIST_SUB + ((v >> (exp - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

static __u64 hist_value(unsigned int b)
{
	unsigned int exp, sub;

	if (b < HIST_SUB)
		return b;
	exp = b / HIST_SUB + HIST_SUB_BITS - 1;
	sub = b % HIST_SUB;
	return ((__u64)(HIST_SUB + sub) << (exp - HIST_SUB_BITS)) +
	       ((1ULL << (exp - HIST_SUB_BITS)) >> 1);
}

/* Nearest rank: the smallest value with at least pct% of samples at or
 * below it, as the midpoint of its bucket. */
static __u64 hist_pct(const struct hist *h, unsigned int pct)
{
	unsigned long long rank, seen = 0;

	if (!h || !h->count)
		return 0;
	rank = (h->count * pct + 99) / 100;
	if (!rank)
		rank = 1;
	for (unsigned int b = 0; b < HIST_BUCKETS; b++) {
		seen += h->n[b];
		if (seen >= rank)
			return hist_value(b);
	}
	return hist_value(HIST_BUCKETS - 1);
}

static void rate_add(struct rate *r, __u64 ts, bool up)
{
	__u64 s = ts / NS_PER_S;
	unsigned int i = s % RATE_SLOTS;

	if (r->sec[i] != s) {
		if (r->sec[i] > s)
			return;	/* older than the slots remember */
		r->sec[i] = s;
		r->up[i] = r->down[i] = 0;
	}
	if (up)
		r->up[i]++;
	else
		r->down[i]++;
}

/* Seconds of event time the rates at now average over. */
static double rate_span(const struct exhaustion *e, __u64 now)
{
	double s = now > e->first_ns ? (double)(now - e->first_ns) / NS_PER_S : 0;

	return s < 1 ? 1 : s > RATE_WINDOW ? RATE_WINDOW : s;
}

static void rate_get(const struct exhaustion *e, const struct rate *r, __u64 now, double *up,
		     double *down)
{
	__u64 s = now / NS_PER_S;
	unsigned long long u = 0, d = 0;
	double span = rate_span(e, now);

	for (unsigned int i = 0; i < RATE_SLOTS; i++) {
		if (r->sec[i] <= s && r->sec[i] + RATE_WINDOW > s) {
			u += r->up[i];
			d += r->down[i];
		}
	}
	*up = u / span;
	*down = d / span;
}

static int state_of(unsigned int tcp_state)
{
	switch (tcp_state) {
	case TCP_SYN_SENT:
	case TCP_SYN_RECV:
		return EXH_CONNECTING;
	case TCP_ESTABLISHED:
		return EXH_ESTABLISHED;
	case TCP_TIME_WAIT:
		return EXH_TIME_WAIT;
	default:
		return EXH_CLOSING;
	}
}

/* ---- the due-work heap ---- */

static void due_push(struct exhaustion *e, __u64 ts, __u64 cookie)
{
	struct due *d = array__grow(e->due, &e->cap_due, e->ndue + 1, sizeof(*d));
	size_t i;

	if (!d)
		return;	/* the socket stays until the check or the end */
	e->due = d;
	i = e->ndue++;
	while (i && d[(i - 1) / 2].ts > ts) {
		d[i] = d[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	d[i].ts = ts;
	d[i].cookie = cookie;
}

static struct due due_pop(struct exhaustion *e)
{
	struct due *d = e->due, top = d[0], last = d[--e->ndue];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= e->ndue)
			break;
		if (c + 1 < e->ndue && d[c + 1].ts < d[c].ts)
			c++;
		if (d[c].ts >= last.ts)
			break;
		d[i] = d[c];
		i = c;
	}
	if (e->ndue)
		d[i] = last;
	return top;
}

/* ---- namespaces, pools, destinations, processes ---- */

static bool port_reserved(const struct xns *ns, __u16 port)
{
	return ns->reserved && ((ns->reserved[port / 64] >> (port % 64)) & 1);
}

static unsigned int pool_capacity(const struct xpool *p)
{
	const struct xns *ns = p->ns;

	return ns->hi ? ns->hi - ns->lo + 1 - ns->reserved_in_range : 0;
}

static void ns_count_reserved(struct xns *ns)
{
	ns->reserved_in_range = 0;
	if (!ns->reserved || !ns->hi)
		return;
	for (unsigned int port = ns->lo; port <= ns->hi; port++)
		ns->reserved_in_range += port_reserved(ns, port);
}

/* Live: what the namespace itself says is reserved, on top of what events
 * flagged. */
static void ns_read_reserved(struct exhaustion *e, struct xns *ns)
{
	__u64 *bits;
	__u16 lo, hi;

	if (!e->o.live)
		return;
	bits = calloc(65536 / 64, sizeof(*bits));
	if (!bits)
		return;
	if (sockdiag__netns_ports(ns->inode, &lo, &hi, bits) == 0) {
		bool any = false;

		for (unsigned int i = 0; i < 65536 / 64; i++)
			any |= bits[i] != 0;
		if (any && !ns->reserved) {
			ns->reserved = bits;
			bits = NULL;
		} else if (any) {
			for (unsigned int i = 0; i < 65536 / 64; i++)
				ns->reserved[i] |= bits[i];
		}
	}
	free(bits);
}

static struct xns *ns_get(struct exhaustion *e, __u32 inode)
{
	struct xns **slot = socktab__get(e->nss, inode), *ns;
	struct xns **v;

	if (slot)
		return *slot;
	v = array__grow(e->nsv, &e->cap_nsv, e->nns + 1, sizeof(*v));
	ns = calloc(1, sizeof(*ns));
	if (!v || !ns) {
		free(ns);
		return NULL;
	}
	e->nsv = v;
	ns->inode = inode;
	if (!socktab__put(e->nss, inode, &ns)) {
		free(ns);
		return NULL;
	}
	e->nsv[e->nns++] = ns;
	ns_read_reserved(e, ns);
	return ns;
}

static struct xpool *pool_get(struct exhaustion *e, __u32 netns, __u8 proto)
{
	struct xns *ns = ns_get(e, netns);
	struct xpool *p, **v;
	int i = proto == IPPROTO_UDP;

	if (!ns)
		return NULL;
	if (ns->pools[i])
		return ns->pools[i];
	v = array__grow(e->pools, &e->cap_pools, e->npools + 1, sizeof(*v));
	p = calloc(1, sizeof(*p));
	if (!v || !p) {
		free(p);
		return NULL;
	}
	e->pools = v;
	p->port_refs = socktab__new(65536, sizeof(__u32));
	if (!p->port_refs) {
		free(p);
		return NULL;
	}
	p->ns = ns;
	p->proto = proto;
	p->any.pool = p;
	p->any.any = true;
	p->any.id = ++e->next_dest_id;
	ns->pools[i] = p;
	e->pools[e->npools++] = p;
	return p;
}

/* Without creating it. */
static struct xpool *pool_find(const struct exhaustion *e, __u32 netns, __u8 proto)
{
	struct xns **ns = socktab__get(e->nss, netns);

	return ns ? (*ns)->pools[proto == IPPROTO_UDP] : NULL;
}

static __u64 dest_hash(const struct xpool *p, __u8 family, const __u8 *laddr, const __u8 *raddr,
		       __u16 rport)
{
	__u64 h = 1469598103934665603ULL ^ (uintptr_t)p;	/* FNV-1a */
	const __u8 *parts[] = {laddr, raddr};

	h = (h ^ family) * 1099511628211ULL;
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 16; i++)
			h = (h ^ parts[k][i]) * 1099511628211ULL;
	h = (h ^ (rport & 0xff)) * 1099511628211ULL;
	h = (h ^ (rport >> 8)) * 1099511628211ULL;
	return h ? h : 1;
}

static struct xdest *dest_get(struct exhaustion *e, struct xpool *p, const struct pt_event *ev)
{
	size_t alen = ev->sk.family == AF_INET ? 4 : 16;
	__u8 laddr[16] = {}, raddr[16] = {};
	struct xdest **slot, *d, **v;
	__u64 h;

	memcpy(laddr, ev->sk.laddr, alen);
	memcpy(raddr, ev->sk.raddr, alen);
	h = dest_hash(p, ev->sk.family, laddr, raddr, ev->sk.rport);
	slot = socktab__get(e->dest_idx, h);
	for (d = slot ? *slot : NULL; d; d = d->hnext)
		if (d->pool == p && d->family == ev->sk.family && d->rport == ev->sk.rport &&
		    !memcmp(d->laddr, laddr, 16) && !memcmp(d->raddr, raddr, 16))
			return d;
	if (e->next_dest_id >= MAX_DESTS)
		return &p->any;
	v = array__grow(p->dests, &p->cap_dests, p->ndests + 1, sizeof(*v));
	d = calloc(1, sizeof(*d));
	if (!v || !d) {
		free(d);
		return &p->any;
	}
	p->dests = v;
	d->pool = p;
	d->id = ++e->next_dest_id;
	d->family = ev->sk.family;
	memcpy(d->laddr, laddr, 16);
	memcpy(d->raddr, raddr, 16);
	d->rport = ev->sk.rport;
	d->hnext = slot ? *slot : NULL;
	if (!socktab__put(e->dest_idx, h, &d)) {
		free(d);
		return &p->any;
	}
	p->dests[p->ndests++] = d;
	return d;
}

static struct xproc *proc_of(struct exhaustion *e, const struct pt_event *ev)
{
	struct xproc **slot, *p, **v;

	if (!(ev->flags & PT_F_OWNER_KNOWN) || !ev->owner.pid)
		return NULL;
	slot = socktab__get(e->by_pid, ev->owner.pid);
	if (slot && pt_owner_same_start((*slot)->start_ns, ev->owner.start_ns))
		return *slot;
	if (e->nprocs >= MAX_PROCS)
		return NULL;
	v = array__grow(e->procs, &e->cap_procs, e->nprocs + 1, sizeof(*v));
	p = calloc(1, sizeof(*p));
	if (!v || !p) {
		free(p);
		return NULL;
	}
	e->procs = v;
	p->pid = ev->owner.pid;
	p->start_ns = ev->owner.start_ns;
	p->cgroup = ev->owner.cgroup_id;
	memcpy(p->comm, ev->owner.comm, sizeof(p->comm));
	p->comm[sizeof(p->comm) - 1] = '\0';
	e->procs[e->nprocs++] = p;
	socktab__put(e->by_pid, p->pid, &p);
	return p;
}

/* ---- occupancy: counts, peaks, warnings, rates ---- */

static unsigned int dest_occupancy(const struct xdest *d)
{
	return (d->any ? 0 : d->own) + d->pool->shared;
}

static void warn_add(struct exhaustion *e, struct xdest *d, __u64 ts, unsigned int occ,
		     unsigned int cap)
{
	struct xpool *p = d->pool;
	char la[INET6_ADDRSTRLEN] = "", ra[INET6_ADDRSTRLEN] = "";

	if (e->nwarn < MAX_WARNINGS) {
		struct warning *w = &e->warns[e->nwarn];

		w->ts = ts;
		w->netns = p->ns->inode;
		w->proto = p->proto;
		w->family = d->family;
		w->any = d->any;
		memcpy(w->laddr, d->laddr, 16);
		memcpy(w->raddr, d->raddr, 16);
		w->rport = d->rport;
		w->occupancy = occ;
		w->capacity = cap;
	}
	e->nwarn++;
	if (!e->o.say)
		return;
	if (d->any) {
		p_warn("netns %u %s: every destination is %u%% full (%u/%u ports held by bind/listen%s)",
		       p->ns->inode, names__proto(p->proto), occ * 100 / cap, occ, cap,
		       p->proto == IPPROTO_UDP ? "/UDP" : "");
		return;
	}
	inet_ntop(d->family, d->laddr, la, sizeof(la));
	inet_ntop(d->family, d->raddr, ra, sizeof(ra));
	p_warn("netns %u %s %s > %s%s%s:%u is %u%% full (%u/%u ports)", p->ns->inode,
	       names__proto(p->proto), la, d->family == AF_INET6 ? "[" : "", ra,
	       d->family == AF_INET6 ? "]" : "", d->rport, occ * 100 / cap, occ, cap);
}

/* After d's occupancy may have changed: peak, and a warning on the way up
 * through warn_frac (again only after it fell below). */
static void dest_touch(struct exhaustion *e, struct xdest *d, __u64 ts)
{
	unsigned int occ = dest_occupancy(d), cap = pool_capacity(d->pool);

	if (occ > d->peak) {
		d->peak = occ;
		d->peak_ns = ts;
	}
	if (!cap)
		return;
	if (occ < e->o.warn_frac * cap) {
		d->warned = false;
	} else if (!d->warned) {
		d->warned = true;
		warn_add(e, d, ts, occ, cap);
	}
}

/* The shared ports changed: every destination of the pool sees it. UDP's
 * destinations have no ports of their own; its pool row says it all. */
static void pool_touch(struct exhaustion *e, struct xpool *p, __u64 ts)
{
	dest_touch(e, &p->any, ts);
	if (p->proto == IPPROTO_UDP)
		return;
	for (size_t i = 0; i < p->ndests; i++)
		dest_touch(e, p->dests[i], ts);
}

static bool sock_counts(const struct xsock *s)
{
	const struct xns *ns = s->pool->ns;

	/* A connect() counts from when its port is known: when the syscall
	 * returns (even -EINPROGRESS) or the handshake ends. Counting it from
	 * SYN_SENT would count the attempts that find no port, too. */
	if (s->cls == XC_LIMBO || s->cls == XC_SERVER || !s->lport)
		return false;
	if (!ns->hi || s->lport < ns->lo || s->lport > ns->hi)
		return false;
	return !port_reserved(ns, s->lport);
}

static void sock_apply(struct xsock *s, int dir)
{
	struct xpool *p = s->pool;
	__u32 *refs, one = 1;

	if (s->cls == XC_DEST) {
		s->dest->own += dir;
		s->dest->state[s->state] += dir;
		return;
	}
	/* Sockets sharing a port (SO_REUSEADDR/REUSEPORT) take it once. */
	refs = socktab__get(p->port_refs, s->lport + 1u);
	if (dir > 0) {
		if (refs) {
			(*refs)++;
		} else if (socktab__put(p->port_refs, s->lport + 1u, &one)) {
			p->shared++;
		}
	} else if (refs && --*refs == 0) {
		socktab__take(p->port_refs, s->lport + 1u, NULL);
		p->shared--;
	}
}

/* Before changing s: take its count away; returns the pool's shared count
 * for sock_end() to compare. */
static unsigned int sock_begin(struct xsock *s)
{
	unsigned int shared = s->pool->shared;

	if (s->counted) {
		sock_apply(s, -1);
		s->counted = false;
	}
	return shared;
}

static void sock_end(struct exhaustion *e, struct xsock *s, unsigned int shared_before, __u64 ts)
{
	struct xdest *d = s->cls == XC_DEST ? s->dest : &s->pool->any;

	if (sock_counts(s)) {
		sock_apply(s, 1);
		s->counted = true;
		/* An allocation enters the rates once its port is known;
		 * ports held before tracing never do. */
		if (s->lport && !s->noted && !s->seeded) {
			s->noted = true;
			d->allocs++;
			rate_add(&d->rate, ts, true);
		}
	}
	if (s->cls == XC_DEST)
		dest_touch(e, s->dest, ts);
	if (s->pool->shared != shared_before)
		pool_touch(e, s->pool, ts);
}

static struct xsock *sock_get(struct exhaustion *e, __u64 cookie)
{
	struct xsock **slot = cookie ? socktab__get(e->socks, cookie) : NULL;

	return slot ? *slot : NULL;
}

static struct xsock *sock_new(struct exhaustion *e, struct xpool *p, const struct pt_event *ev,
			      enum xclass cls, struct xdest *d)
{
	struct xsock *s;

	if (!ev->sk.cookie)
		return NULL;
	if (socktab__count(e->socks) >= MAX_SOCKS || !(s = calloc(1, sizeof(*s)))) {
		e->untracked++;
		return NULL;
	}
	s->cookie = ev->sk.cookie;
	s->pool = p;
	s->cls = cls;
	if (cls == XC_SERVER)
		p->server_tw++;
	s->dest = d;
	s->proc = proc_of(e, ev);
	if (!socktab__put(e->socks, s->cookie, &s)) {
		free(s);
		e->untracked++;
		return NULL;
	}
	s->next = p->socks;
	if (p->socks)
		p->socks->prev = s;
	p->socks = s;
	return s;
}

static __u64 port_key(const struct xsock *s)
{
	return s->dest->id << 16 | s->lport;
}

static void sock_free(struct exhaustion *e, struct xsock *s, __u64 ts)
{
	struct xpool *p = s->pool;
	struct xdest *d = s->cls == XC_DEST ? s->dest : &p->any;
	bool was = s->counted;
	unsigned int shared = sock_begin(s);
	struct xsock **idx;

	if (was && (s->noted || s->seeded)) {
		d->releases++;
		rate_add(&d->rate, ts, false);
	}
	if (s->cls == XC_DEST && s->lport && (idx = socktab__get(e->port_idx, port_key(s))) &&
	    *idx == s)
		socktab__take(e->port_idx, port_key(s), NULL);
	socktab__take(e->socks, s->cookie, NULL);
	if (s->prev)
		s->prev->next = s->next;
	else
		p->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->cls == XC_SERVER)
		p->server_tw--;
	if (s->cls == XC_DEST)
		dest_touch(e, s->dest, ts);
	if (p->shared != shared)
		pool_touch(e, p, ts);
	free(s);
}

static void sock_set_port(struct exhaustion *e, struct xsock *s, __u16 port, __u64 ts)
{
	unsigned int shared;
	struct xsock **old;

	if (!port || port == s->lport)
		return;
	if (s->cls == XC_DEST) {
		old = socktab__get(e->port_idx, s->dest->id << 16 | port);
		/*
		 * The same 4-tuple: the kernel let this connect() take over a
		 * time-wait socket (tcp_tw_reuse, on for loopback by default)
		 * and killed it, with no event to say so.
		 */
		if (old && *old != s)
			sock_free(e, *old, ts);
		if (s->lport && (old = socktab__get(e->port_idx, port_key(s))) && *old == s)
			socktab__take(e->port_idx, port_key(s), NULL);
	}
	shared = sock_begin(s);
	s->lport = port;
	if (s->cls == XC_DEST)
		socktab__put(e->port_idx, port_key(s), &s);
	sock_end(e, s, shared, ts);
}

static void sock_set_state(struct exhaustion *e, struct xsock *s, int state, __u64 ts)
{
	unsigned int shared;

	if (s->state == state)
		return;
	shared = sock_begin(s);
	s->state = state;
	sock_end(e, s, shared, ts);
}

/* The range or the reserved ports of ns changed: count every socket of it
 * again. */
static void ns_recount(struct exhaustion *e, struct xns *ns, __u64 ts)
{
	ns_count_reserved(ns);
	for (int i = 0; i < 2; i++) {
		struct xpool *p = ns->pools[i];

		if (!p)
			continue;
		for (struct xsock *s = p->socks; s; s = s->next)
			sock_begin(s);
		for (struct xsock *s = p->socks; s; s = s->next) {
			if (sock_counts(s)) {
				sock_apply(s, 1);
				s->counted = true;
			}
		}
		pool_touch(e, p, ts);
		for (size_t j = 0; j < p->ndests; j++)
			dest_touch(e, p->dests[j], ts);
	}
}

/*
 * The range an event shows. Not from release records: the decoder fills
 * those in from what it saw when the port was taken, perhaps under an older
 * range; nor from a socket's own IP_LOCAL_PORT_RANGE.
 */
static void range_seen(struct exhaustion *e, struct xns *ns, const struct pt_event *ev)
{
	const struct pt_sock *sk = &ev->sk;
	bool recount = false;

	if (ev->type == PT_EV_PORT && ev->kind == PT_PORT_RELEASE)
		return;
	if ((ev->flags & PT_F_RESERVED) && pt_event_port_known(ev) && !port_reserved(ns, sk->lport)) {
		if (!ns->reserved)
			ns->reserved = calloc(65536 / 64, sizeof(*ns->reserved));
		if (ns->reserved) {
			ns->reserved[sk->lport / 64] |= 1ULL << (sk->lport % 64);
			recount = true;
		}
	}
	if (sk->range_hi && sk->range_lo <= sk->range_hi && !(ev->flags & PT_F_RANGE_SOCK) &&
	    (sk->range_lo != ns->lo || sk->range_hi != ns->hi) && ev->ts_ns >= ns->range_ns) {
		ns->lo = sk->range_lo;
		ns->hi = sk->range_hi;
		ns->range_ns = ev->ts_ns;
		ns_read_reserved(e, ns);
		recount = true;
	}
	if (recount)
		ns_recount(e, ns, ev->ts_ns);
}

/* ---- failures and latency ---- */

static void failure(struct xdest *d, struct xproc *proc, const struct pt_event *ev)
{
	struct xfail *f = NULL;

	if (!d->failures++)
		d->first_fail_ns = ev->ts_ns;
	d->last_fail_ns = ev->ts_ns;
	d->fail_err = ev->err;
	d->fail_by[ev->err == EADDRNOTAVAIL ? EXH_ERR_ADDRNOTAVAIL
		   : ev->err == EADDRINUSE ? EXH_ERR_ADDRINUSE
		   : ev->err == EAGAIN	   ? EXH_ERR_AGAIN
					   : EXH_ERR_OTHER]++;
	for (unsigned int i = 0; i < d->nfails && !f; i++)
		if (d->fails[i].proc == proc)
			f = &d->fails[i];
	if (!f && d->nfails < MAX_FAIL_PROCS) {
		f = &d->fails[d->nfails++];
		f->proc = proc;
	} else if (!f) {
		f = &d->fails[MAX_FAIL_PROCS - 1];
		f->proc = NULL;	/* the last slot folds the rest */
	}
	f->n++;
}

static void latwin_close(struct xdest *d)
{
	d->win_p99[d->nwins++ % LAT_WINDOWS] = hist_pct(d->win, 99);
	memset(d->win, 0, sizeof(*d->win));
}

/* Latency windows are interval_s long, counted from the first event, so a
 * log read back cuts them where the live run did. */
static void latency(struct exhaustion *e, struct xdest *d, __u64 ns, __u64 ts)
{
	__u64 idx = ts > e->first_ns ? (ts - e->first_ns) / e->interval_ns : 0;
	unsigned int b = hist_bucket(ns);

	if (!ns)
		return;
	if (!d->lat) {
		d->lat = calloc(1, sizeof(*d->lat));
		d->win = calloc(1, sizeof(*d->win));
		if (!d->lat || !d->win) {
			free(d->lat);
			free(d->win);
			d->lat = d->win = NULL;
			return;
		}
		d->win_idx = idx;
	}
	if (idx > d->win_idx) {
		if (d->win->count)
			latwin_close(d);
		d->win_idx = idx;
	}
	d->lat->count++;
	d->lat->sum_ns += ns;
	d->lat->n[b]++;
	d->win->count++;
	d->win->n[b]++;
}

/* ---- the events ---- */

/*
 * What a socket found in the kernel's table holds, if anything: a port of
 * its own (a connect(): class XC_DEST) or one for all (XC_SHARED). The
 * table cannot say how a port was taken; a connected socket whose port a
 * listener of the namespace has is taken as accepted from it, any other
 * connected socket as a connect(), possibly after bind(). Listeners come
 * first in the kernel's dump, before the sockets accepted from them.
 */
static bool classify_existing(struct socktab *listen, const struct pt_event *ev,
			      enum xclass *cls, int *state)
{
	__u64 key = (__u64)ev->sk.netns << 17 | (ev->sk.lport + 1u);
	__u8 one = 1;

	*state = EXH_ESTABLISHED;
	if (!ev->sk.lport)
		return false;
	if (ev->sk.proto == IPPROTO_UDP) {
		*cls = XC_SHARED;
		return true;
	}
	switch (ev->newstate) {
	case TCP_LISTEN:
		socktab__put(listen, key, &one);
		*cls = XC_SHARED;
		return true;
	case TCP_CLOSE:
		*cls = XC_SHARED;	/* bound, never connected */
		return true;
	case TCP_SYN_RECV:
	case TCP_NEW_SYN_RECV:
		return false;		/* a server's end: the listener's port */
	}
	if (socktab__get(listen, key)) {
		/* A server's end: the listener's port. Its time-wait socket
		 * (TIME_WAIT, or an orphan in FIN_WAIT2 the kernel folded
		 * into one, which has a time left) blocks a rebind. */
		if (ev->newstate != TCP_TIME_WAIT && !ev->latency_ns)
			return false;
		*cls = XC_SERVER;
		*state = EXH_TIME_WAIT;
		return true;
	}
	*cls = XC_DEST;
	*state = state_of(ev->newstate);
	return true;
}

static void on_existing(struct exhaustion *e, struct xpool *p, const struct pt_event *ev)
{
	struct xsock *s;
	enum xclass cls;
	int state;
	unsigned int shared;

	/* Events about it got here first (the snapshot runs after the hooks
	 * are attached): they know better. */
	if (sock_get(e, ev->sk.cookie) || !classify_existing(e->listen, ev, &cls, &state))
		return;
	s = sock_new(e, p, ev, cls, cls == XC_DEST ? dest_get(e, p, ev) : NULL);
	if (!s)
		return;
	s->seeded = true;
	s->state = state;
	/* No event will ever say when a time-wait socket goes: the kernel
	 * said how long it has left. */
	if (ev->latency_ns && (cls == XC_DEST || cls == XC_SERVER)) {
		s->expire_ns = ev->ts_ns + ev->latency_ns;
		due_push(e, s->expire_ns, s->cookie);
	}
	shared = sock_begin(s);
	sock_end(e, s, shared, ev->ts_ns);
	sock_set_port(e, s, ev->sk.lport, ev->ts_ns);
}

static void on_state(struct exhaustion *e, struct xpool *p, const struct pt_event *ev)
{
	struct xsock *s = sock_get(e, ev->sk.cookie);
	__u16 port = pt_event_port_known(ev) ? ev->sk.lport : 0;
	unsigned int shared;

	if (p->proto != IPPROTO_TCP)
		return;
	if (ev->oldstate == TCP_CLOSE && ev->newstate == TCP_SYN_SENT) {
		if (s && s->cls == XC_LIMBO) {
			sock_free(e, s, ev->ts_ns);
			s = NULL;
		}
		if (!s) {
			s = sock_new(e, p, ev, XC_DEST, dest_get(e, p, ev));
			if (!s)
				return;
			s->state = EXH_CONNECTING;
			shared = sock_begin(s);
			sock_end(e, s, shared, ev->ts_ns);
			sock_set_port(e, s, port, ev->ts_ns);
			return;
		}
		/* bound first: the port stays shared, whatever the peer */
	}
	if (!s || s->cls == XC_LIMBO)
		return;		/* accepted sockets: the listener's port */
	if (ev->newstate == TCP_CLOSE) {
		/* The port event that follows says what became of the port. */
		if (ev->flags & (PT_F_RELEASE | PT_F_TIMEWAIT))
			return;
		if (s->cls == XC_DEST && !s->lport && !port) {
			/* No port found: its alloc-fail follows and needs
			 * the source address this socket had. */
			shared = sock_begin(s);
			s->cls = XC_LIMBO;
			sock_end(e, s, shared, ev->ts_ns);
			due_push(e, ev->ts_ns + PT_NO_PORT_WAIT_NS, s->cookie);
			return;
		}
		/* A bound port stays until the socket is closed, and
		 * sock_release says when: unless it was bound before tracing
		 * began, when no hook knows it. Then close() is the likely end. */
		if (s->cls == XC_DEST || s->seeded)
			sock_free(e, s, ev->ts_ns);
		return;
	}
	sock_set_state(e, s, state_of(ev->newstate), ev->ts_ns);
	sock_set_port(e, s, port, ev->ts_ns);
}

/* The destination a port event talks about. A failed connect() has lost
 * its source address by the time the syscall returns: the socket it came
 * from kept it. */
static struct xdest *port_dest(struct exhaustion *e, struct xpool *p, const struct pt_event *ev)
{
	struct xsock *s = sock_get(e, ev->sk.cookie);

	if (s && s->cls != XC_SHARED && s->dest)
		return s->dest;
	return dest_get(e, p, ev);
}

static void on_port(struct exhaustion *e, struct xpool *p, const struct pt_event *ev)
{
	struct xsock *s = sock_get(e, ev->sk.cookie);
	__u16 port = pt_event_port_known(ev) ? ev->sk.lport : 0;
	unsigned int shared;

	switch (ev->kind) {
	case PT_PORT_EXISTING:
		on_existing(e, p, ev);
		break;
	case PT_PORT_BIND:
	case PT_PORT_LISTEN:
	case PT_PORT_ALLOC:
		if (ev->kind == PT_PORT_ALLOC)
			latency(e, port_dest(e, p, ev), ev->latency_ns, ev->ts_ns);
		if (!port)
			break;
		if (s && s->cls == XC_LIMBO) {
			sock_free(e, s, ev->ts_ns);
			s = NULL;
		}
		/* A TCP connect()'s socket came with its SYN_SENT; one that is
		 * gone already (refused) has nothing left to count. */
		if (!s && (p->proto == IPPROTO_UDP || ev->kind != PT_PORT_ALLOC)) {
			s = sock_new(e, p, ev, XC_SHARED, NULL);
			if (!s)
				break;
			shared = sock_begin(s);
			sock_end(e, s, shared, ev->ts_ns);
		}
		if (s)
			sock_set_port(e, s, port, ev->ts_ns);
		break;
	case PT_PORT_CONNECT:
		latency(e, port_dest(e, p, ev), ev->latency_ns, ev->ts_ns);
		break;
	case PT_PORT_ALLOC_FAIL: {
		struct xdest *d = port_dest(e, p, ev);

		latency(e, d, ev->latency_ns, ev->ts_ns);
		failure(d, proc_of(e, ev), ev);
		if (s && s->cls != XC_SHARED)
			sock_free(e, s, ev->ts_ns);
		break;
	}
	case PT_PORT_BIND_FAIL:
		/* bind(addr, 0) found the range full. */
		if (ev->err == EADDRINUSE && !ev->req_port)
			failure(&p->any, proc_of(e, ev), ev);
		break;
	case PT_PORT_TIMEWAIT:
		/* An accepted socket closed first: its time-wait socket holds
		 * the listener's port toward its peer, no port of the range. */
		if (!s && (ev->flags & PT_F_ACCEPTED) && port) {
			s = sock_new(e, p, ev, XC_SERVER, NULL);
			if (s) {
				s->state = EXH_TIME_WAIT;
				s->lport = port;
			}
			break;
		}
		if (s && s->cls != XC_LIMBO) {
			sock_set_state(e, s, EXH_TIME_WAIT, ev->ts_ns);
			sock_set_port(e, s, port, ev->ts_ns);
		}
		break;
	case PT_PORT_RELEASE:
		if (s)
			sock_free(e, s, ev->ts_ns);
		break;
	default:
		break;
	}
}

/* Work due by event time ts: time-wait sockets of the start-up snapshot
 * gone, failed connect()s no longer waiting for their alloc-fail. */
static void due_run(struct exhaustion *e, __u64 ts)
{
	while (e->ndue && e->due[0].ts <= ts) {
		struct due d = due_pop(e);
		struct xsock *s = sock_get(e, d.cookie);

		if (s && ((s->seeded && s->expire_ns == d.ts) || s->cls == XC_LIMBO))
			sock_free(e, s, d.ts);
	}
}

int exhaustion__event(void *ctx, const struct pt_event *ev)
{
	struct exhaustion *e = ctx;
	struct xpool *p;

	e->events++;
	if (ev->type == PT_EV_LOST) {
		e->lost += ev->lost;
		return 0;
	}
	if (!e->first_ns || ev->ts_ns < e->first_ns)
		e->first_ns = ev->ts_ns;
	if (ev->ts_ns > e->last_ns)
		e->last_ns = ev->ts_ns;
	due_run(e, ev->ts_ns);
	if (ev->sk.proto != IPPROTO_TCP && ev->sk.proto != IPPROTO_UDP)
		return 0;
	p = pool_get(e, ev->sk.netns, ev->sk.proto);
	if (!p) {
		e->untracked++;
		return 0;
	}
	range_seen(e, p->ns, ev);
	if (ev->type == PT_EV_STATE)
		on_state(e, p, ev);
	else if (ev->type == PT_EV_PORT)
		on_port(e, p, ev);
	return 0;
}

/* ---- life cycle ---- */

struct exhaustion *exhaustion__new(const struct exhaustion_opts *o)
{
	struct exhaustion *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->o = *o;
	if (e->o.warn_frac <= 0 || e->o.warn_frac > 1)
		e->o.warn_frac = 0.8;
	if (e->o.interval_s <= 0)
		e->o.interval_s = 10;
	e->interval_ns = (__u64)(e->o.interval_s * NS_PER_S);
	if (!e->interval_ns)
		e->interval_ns = 1;
	e->socks = socktab__new(MAX_SOCKS, sizeof(struct xsock *));
	e->nss = socktab__new(1u << 20, sizeof(struct xns *));
	e->dest_idx = socktab__new(MAX_DESTS, sizeof(struct xdest *));
	e->port_idx = socktab__new(MAX_SOCKS, sizeof(struct xsock *));
	e->by_pid = socktab__new(MAX_PROCS, sizeof(struct xproc *));
	e->listen = socktab__new(1u << 22, 1);
	e->mismatch = socktab__new(MAX_SOCKS, 1);
	if (!e->socks || !e->nss || !e->dest_idx || !e->port_idx || !e->by_pid || !e->listen ||
	    !e->mismatch) {
		exhaustion__free(e);
		return NULL;
	}
	return e;
}

static void dest_free_hists(struct xdest *d)
{
	free(d->lat);
	free(d->win);
}

void exhaustion__free(struct exhaustion *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->npools; i++) {
		struct xpool *p = e->pools[i];

		while (p->socks) {
			struct xsock *s = p->socks;

			p->socks = s->next;
			free(s);
		}
		for (size_t j = 0; j < p->ndests; j++) {
			dest_free_hists(p->dests[j]);
			free(p->dests[j]);
		}
		dest_free_hists(&p->any);
		free(p->dests);
		socktab__free(p->port_refs);
		free(p);
	}
	for (size_t i = 0; i < e->nns; i++) {
		free(e->nsv[i]->reserved);
		free(e->nsv[i]);
	}
	for (size_t i = 0; i < e->nprocs; i++)
		free(e->procs[i]);
	free(e->pools);
	free(e->nsv);
	free(e->procs);
	free(e->due);
	socktab__free(e->socks);
	socktab__free(e->nss);
	socktab__free(e->dest_idx);
	socktab__free(e->port_idx);
	socktab__free(e->by_pid);
	socktab__free(e->listen);
	socktab__free(e->mismatch);
	free(e);
}

void exhaustion__set_base(struct exhaustion *e, __u64 base_ns)
{
	e->base_ns = base_ns;
}

/* ---- the check against the kernel's table ---- */

struct check_ctx {
	struct exhaustion *e;
	struct socktab *listen;	/* this dump's listeners */
	struct socktab *held;	/* cookies the kernel counts */
	__u64 *cookies;
	struct xpool **pools;	/* of each cookie; NULL: a pool events never showed */
	size_t n, cap, cap_pools;
	/* Server-side time-wait sockets of the table, and their pools. */
	__u64 *srv;
	struct xpool **srv_pools;
	size_t nsrv, cap_srv, cap_srv_pools;
	int err;
};

/* A server-side time-wait socket of the table: add it to c's list. */
static int check_server(struct check_ctx *c, const struct pt_event *ev)
{
	__u64 *srv = array__grow(c->srv, &c->cap_srv, c->nsrv + 1, sizeof(*srv));
	struct xpool **pools;
	__u8 one = 1;

	if (srv)
		c->srv = srv;
	pools = array__grow(c->srv_pools, &c->cap_srv_pools, c->nsrv + 1, sizeof(*pools));
	if (pools)
		c->srv_pools = pools;
	if (!srv || !pools || !socktab__put(c->held, ev->sk.cookie, &one))
		return c->err = -ENOMEM;
	c->srv_pools[c->nsrv] = pool_find(c->e, ev->sk.netns, ev->sk.proto);
	c->srv[c->nsrv++] = ev->sk.cookie;
	return 0;
}

/* The same rules as the start-up snapshot, with the range and reserved
 * ports as the kernel has them now. */
static int check_event(void *ctx, const struct pt_event *ev)
{
	struct check_ctx *c = ctx;
	const struct pt_sock *sk = &ev->sk;
	struct xpool **pools;
	enum xclass cls;
	__u64 *cookies;
	__u8 one = 1;
	int state;

	const struct xsock *s;

	if (!classify_existing(c->listen, ev, &cls, &state))
		return 0;
	/* One events saw made by an accepted socket, its listener gone. */
	s = sock_get(c->e, sk->cookie);
	if (s && s->cls == XC_SERVER && state == EXH_TIME_WAIT)
		cls = XC_SERVER;
	if (cls == XC_SERVER)
		return check_server(c, ev);
	if (!pt_event_in_range(ev) || (ev->flags & PT_F_RESERVED))
		return 0;
	cookies = array__grow(c->cookies, &c->cap, c->n + 1, sizeof(*cookies));
	if (cookies)
		c->cookies = cookies;
	pools = array__grow(c->pools, &c->cap_pools, c->n + 1, sizeof(*pools));
	if (pools)
		c->pools = pools;
	if (!cookies || !pools || !socktab__put(c->held, sk->cookie, &one))
		return c->err = -ENOMEM;
	c->pools[c->n] = pool_find(c->e, sk->netns, sk->proto);
	c->cookies[c->n++] = sk->cookie;
	return 0;
}

/* Counted now: a time-wait socket of the start-up snapshot whose end is
 * past is counted until an event moves time on, but not by checks. */
static bool counted_at(const struct xsock *s, __u64 now)
{
	return s->counted && !(s->seeded && s->expire_ns && s->expire_ns <= now);
}

static void check_add(struct pool_check *a, const struct pool_check *b)
{
	a->kernel += b->kernel;
	a->events += b->events;
	a->missing += b->missing;
	a->extra += b->extra;
	a->persistent += b->persistent;
	a->tw_gone += b->tw_gone;
	a->srv_kernel += b->srv_kernel;
	a->srv_events += b->srv_events;
	a->srv_missing += b->srv_missing;
	a->srv_extra += b->srv_extra;
}

/* What the kernel would say of time-wait socket s: where to look it up. */
static void tw_sock(const struct xsock *s, struct pt_sock *sk)
{
	const struct xdest *d = s->dest;
	const struct xns *ns = s->pool->ns;

	memset(sk, 0, sizeof(*sk));
	sk->cookie = s->cookie;
	sk->netns = ns->inode;
	sk->family = d->family;
	sk->proto = s->pool->proto;
	sk->lport = s->lport;
	sk->rport = d->rport;
	sk->range_lo = ns->lo;
	sk->range_hi = ns->hi;
	memcpy(sk->laddr, d->laddr, sizeof(sk->laddr));
	memcpy(sk->raddr, d->raddr, sizeof(sk->raddr));
}

/*
 * Time-wait sockets of pool p counted from events but not in the dump
 * (held): a dump can pass over a socket, so each is looked up on its own,
 * and those the kernel has not are given back through gone().
 */
static int tw_reconcile(struct xpool *p, struct socktab *held, __u64 now_ns,
			pt_event_fn gone, void *ctx)
{
	struct pt_sock *sks = NULL, *grown;
	__u64 *found = NULL;
	size_t n = 0, cap = 0;
	int err = 0;

	for (struct xsock *s = p->socks; s; s = s->next) {
		if (s->state != EXH_TIME_WAIT || s->cls != XC_DEST || !s->dest || !s->lport ||
		    !counted_at(s, now_ns) || socktab__get(held, s->cookie))
			continue;
		grown = array__grow(sks, &cap, n + 1, sizeof(*sks));
		if (!grown) {
			err = -ENOMEM;
			goto out;
		}
		sks = grown;
		tw_sock(s, &sks[n++]);
	}
	if (!n)
		goto out;
	found = malloc(n * sizeof(*found));
	if (!found) {
		err = -ENOMEM;
		goto out;
	}
	err = sockdiag__lookup(p->ns->inode, sks, n, found);
	/*
	 * Still there: the dump passed over it. Another socket on its
	 * addresses: a connect() took it over (tcp_tw_reuse) since the
	 * events were read, and its own event will say so. Nothing there:
	 * gone. The events free the sockets: none is looked at after this.
	 */
	for (size_t i = 0; !err && i < n; i++) {
		struct pt_event ev = {
			.type = PT_EV_PORT,
			.kind = PT_PORT_RELEASE,
			.reason = PT_REASON_TW_GONE,
			.flags = PT_F_COMPUTED,
			.ts_ns = now_ns,
			.sk = sks[i],
		};

		if (found[i])
			continue;
		p->chk.tw_gone++;
		err = gone(ctx, &ev);
	}
out:
	free(found);
	free(sks);
	return err;
}

/*
 * Sockets, not counts, are compared (by cookie), so that two errors cannot
 * cancel out. A socket taken or given back while the dump runs differs
 * once; one that still differs at the next check is "persistent".
 */
int exhaustion__check(struct exhaustion *e, __u64 now_ns, pt_event_fn gone, void *ctx)
{
	struct check_ctx c = {.e = e};
	struct socktab *now_diff = NULL, *reach = NULL;
	__u32 *ns = NULL;
	size_t nns = 0;
	__u8 one = 1;
	int err;

	if (!e->o.live)
		return -EOPNOTSUPP;
	if (!e->last_check_ns)
		e->last_check_ns = now_ns;
	if (now_ns - e->last_check_ns < e->interval_ns)
		return 0;
	e->last_check_ns = now_ns;
	c.listen = socktab__new(1u << 22, 1);
	c.held = socktab__new(MAX_SOCKS, 1);
	now_diff = socktab__new(MAX_SOCKS, 1);
	reach = socktab__new(1u << 20, 1);
	if (!c.listen || !c.held || !now_diff || !reach) {
		err = -ENOMEM;
		goto cleanup;
	}
	/* A namespace no dump can read (deleted, held by an open file only)
	 * is left out: its sockets may be gone without a word. */
	err = sockdiag__namespaces(&ns, &nns);
	for (size_t i = 0; !err && i < nns; i++)
		socktab__put(reach, ns[i], &one);
	if (!err)
		err = sockdiag__dump(0, check_event, &c);
	if (!err)
		err = c.err;
	if (err)
		goto cleanup;
	memset(&e->chk, 0, sizeof(e->chk));
	e->check_unreachable = 0;
	for (size_t i = 0; i < e->npools; i++) {
		struct xpool *p = e->pools[i];

		memset(&p->chk, 0, sizeof(p->chk));
		p->chk.reachable = socktab__get(reach, p->ns->inode) != NULL;
		if (p->chk.reachable && p->proto == IPPROTO_TCP &&
		    (err = tw_reconcile(p, c.held, now_ns, gone, ctx)))
			goto cleanup;
		for (struct xsock *s = p->socks; s; s = s->next) {
			if (s->cls == XC_SERVER && p->chk.reachable &&
			    !(s->seeded && s->expire_ns && s->expire_ns <= now_ns)) {
				p->chk.srv_events++;
				p->chk.srv_extra += !socktab__get(c.held, s->cookie);
			}
			if (!counted_at(s, now_ns))
				continue;
			if (!p->chk.reachable) {
				e->check_unreachable++;
				continue;
			}
			p->chk.events++;
			if (!socktab__get(c.held, s->cookie)) {
				p->chk.extra++;
				socktab__put(now_diff, s->cookie, &one);
				p->chk.persistent += socktab__get(e->mismatch, s->cookie) != NULL;
			}
		}
	}
	for (size_t i = 0; i < c.n; i++) {
		struct xsock *s = sock_get(e, c.cookies[i]);
		struct pool_check *pc = c.pools[i] ? &c.pools[i]->chk : &e->chk;

		pc->kernel++;
		if (!s || !counted_at(s, now_ns)) {
			pc->missing++;
			socktab__put(now_diff, c.cookies[i], &one);
			pc->persistent += socktab__get(e->mismatch, c.cookies[i]) != NULL;
		}
	}
	for (size_t i = 0; i < c.nsrv; i++) {
		struct xsock *s = sock_get(e, c.srv[i]);
		struct pool_check *pc = c.srv_pools[i] ? &c.srv_pools[i]->chk : &e->chk;

		pc->srv_kernel++;
		pc->srv_missing += !s || s->cls != XC_SERVER;
	}
	for (size_t i = 0; i < e->npools; i++)
		check_add(&e->chk, &e->pools[i]->chk);
	e->tw_gone += e->chk.tw_gone;
	socktab__free(e->mismatch);
	e->mismatch = now_diff;
	now_diff = NULL;
	if (e->o.say && e->chk.persistent && !e->check_persistent_said)
		p_warn("ports counted from events differ from the kernel's socket table by %lu (events %lu, kernel %lu)",
		       e->chk.persistent, e->chk.events, e->chk.kernel);
	e->check_persistent_said = e->chk.persistent != 0;
	e->checked = true;
	e->check_ns = now_ns;
	err = 1;
cleanup:
	socktab__free(c.listen);
	socktab__free(c.held);
	socktab__free(now_diff);
	socktab__free(reach);
	free(c.cookies);
	free(c.pools);
	free(c.srv);
	free(c.srv_pools);
	free(ns);
	return err;
}

/* ---- figures ---- */

struct pair {
	const struct xdest *dest;
	const struct xproc *proc;
};

static int pair_cmp(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;

	if (x->dest != y->dest)
		return x->dest < y->dest ? -1 : 1;
	if (x->proc != y->proc)
		return x->proc < y->proc ? -1 : 1;
	return 0;
}

static int proc_fig_cmp(const void *a, const void *b)
{
	const struct exhaustion_proc *x = a, *y = b;

	if (x->held != y->held)
		return x->held > y->held ? -1 : 1;
	if (x->failures != y->failures)
		return x->failures > y->failures ? -1 : 1;
	/* Time-wait sockets belong to no process: after those that do. */
	if (!x->pid != !y->pid)
		return x->pid ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static void fill_proc(struct exhaustion_proc *f, const struct xproc *p, unsigned int held,
		      unsigned long long failures)
{
	memset(f, 0, sizeof(*f));
	if (p) {
		f->pid = p->pid;
		f->cgroup_id = p->cgroup;
		memcpy(f->comm, p->comm, sizeof(f->comm));
	}
	f->held = held;
	f->failures = failures;
}

/* The processes behind d: holders (from the pairs of d) and failers. */
static void row_top(struct exhaustion_row *r, const struct xdest *d, const struct pair *pairs,
		    size_t n)
{
	struct exhaustion_proc cand[64];
	size_t nc = 0;

	for (size_t i = 0; i < n && nc < 64;) {
		size_t j = i;

		while (j < n && pairs[j].proc == pairs[i].proc)
			j++;
		fill_proc(&cand[nc++], pairs[i].proc, j - i, 0);
		i = j;
	}
	for (unsigned int k = 0; k < d->nfails; k++) {
		const struct xproc *p = d->fails[k].proc;
		size_t i;

		for (i = 0; i < nc; i++)
			if (cand[i].pid == (p ? p->pid : 0) && (!p || !memcmp(cand[i].comm, p->comm, PT_TASK_COMM_LEN)))
				break;
		if (i < nc)
			cand[i].failures += d->fails[k].n;
		else if (nc < 64)
			fill_proc(&cand[nc++], p, 0, d->fails[k].n);
	}
	qsort(cand, nc, sizeof(*cand), proc_fig_cmp);
	r->ntop = nc < EXH_TOP_PROCS ? nc : EXH_TOP_PROCS;
	memcpy(r->top, cand, r->ntop * sizeof(*cand));
}

/* Sockets counted at now, by destination and process (shared ones under
 * the pool row); those of a time-wait socket past its end subtracted. */
static struct pair *pool_pairs(const struct xpool *p, __u64 now, size_t *n)
{
	struct pair *v = NULL, *nv;
	size_t cap = 0;

	*n = 0;
	for (struct xsock *s = p->socks; s; s = s->next) {
		if (!counted_at(s, now))
			continue;
		nv = array__grow(v, &cap, *n + 1, sizeof(*v));
		if (!nv) {
			free(v);
			*n = 0;
			return NULL;
		}
		v = nv;
		v[*n].dest = s->cls == XC_DEST ? s->dest : &p->any;
		v[*n].proc = s->proc;
		(*n)++;
	}
	qsort(v, *n, sizeof(*v), pair_cmp);
	return v;
}

static void fill_row(const struct exhaustion *e, struct exhaustion_row *r, const struct xdest *d,
		     __u64 now, unsigned int shared, unsigned int own, const unsigned int *state)
{
	const struct xpool *p = d->pool;
	const struct xns *ns = p->ns;
	double up, down, sup = 0, sdown = 0, net;

	memset(r, 0, sizeof(*r));
	r->netns = ns->inode;
	r->proto = p->proto;
	r->any = d->any;
	r->family = d->family;
	memcpy(r->laddr, d->laddr, 16);
	memcpy(r->raddr, d->raddr, 16);
	r->rport = d->rport;
	r->range_lo = ns->lo;
	r->range_hi = ns->hi;
	r->capacity = pool_capacity(p);
	r->reserved = ns->reserved_in_range;
	r->shared = shared;
	if (d->any)
		r->server_tw = p->server_tw;
	r->own = d->any || p->proto == IPPROTO_UDP ? 0 : own;
	r->occupancy = r->own + shared;
	if (!d->any && p->proto == IPPROTO_TCP)
		memcpy(r->state, state, sizeof(r->state));
	/* UDP destinations have no ports of their own: the pool's peak. */
	r->peak = p->proto == IPPROTO_UDP ? p->any.peak : d->peak;
	r->peak_ns = p->proto == IPPROTO_UDP ? p->any.peak_ns : d->peak_ns;
	rate_get(e, &d->rate, now, &up, &down);
	if (!d->any)
		rate_get(e, &p->any.rate, now, &sup, &sdown);
	r->alloc_per_s = up;
	r->release_per_s = down;
	net = up - down + sup - sdown;
	r->full_in_s = -1;
	if (r->capacity && r->occupancy >= r->capacity)
		r->full_in_s = 0;
	else if (r->capacity && net > 0)
		r->full_in_s = (r->capacity - r->occupancy) / net;
	r->failures = d->failures;
	r->first_fail_ns = d->first_fail_ns;
	r->last_fail_ns = d->last_fail_ns;
	r->fail_err = d->fail_err;
	memcpy(r->fail_by, d->fail_by, sizeof(r->fail_by));
	r->allocs = d->allocs;
	r->releases = d->releases;
	if (d->lat) {
		r->lat_n = d->lat->count;
		r->lat_p50_ns = hist_pct(d->lat, 50);
		r->lat_p90_ns = hist_pct(d->lat, 90);
		r->lat_p99_ns = hist_pct(d->lat, 99);
	}
}

static bool dest_shown(const struct xdest *d)
{
	return d->own || d->failures || d->lat || d->allocs;
}

/* A pool is worth rows once a port of its range was held or refused. */
static bool pool_shown(const struct xpool *p)
{
	if (p->shared || p->server_tw || dest_shown(&p->any))
		return true;
	for (size_t i = 0; i < p->ndests; i++)
		if (dest_shown(p->dests[i]))
			return true;
	return false;
}

static double row_frac(const struct exhaustion_row *r)
{
	return r->capacity ? (double)r->occupancy / r->capacity : 0;
}

static int row_cmp(const void *a, const void *b)
{
	const struct exhaustion_row *x = a, *y = b;
	double fx = row_frac(x), fy = row_frac(y);

	if (x->any != y->any)
		return x->any ? -1 : 1;
	if (fx != fy)
		return fx > fy ? -1 : 1;
	if (x->failures != y->failures)
		return x->failures > y->failures ? -1 : 1;
	return memcmp(x->raddr, y->raddr, 16);
}

/* Rows of one pool into v (pool row first, then destinations fullest
 * first); returns how many. */
static size_t pool_rows(struct exhaustion *e, struct xpool *p, __u64 now,
			struct exhaustion_row *v, struct xdest **rd)
{
	size_t npairs, n = 0, i = 0;
	struct pair *pairs = pool_pairs(p, now, &npairs);

	/* Only connect()s hold time-wait sockets of the start-up snapshot. */
	for (size_t j = 0; j < p->ndests; j++)
		memset(p->dests[j]->sc_due, 0, sizeof(p->dests[j]->sc_due));
	for (struct xsock *s = p->socks; s; s = s->next)
		if (s->counted && !counted_at(s, now))
			s->dest->sc_due[s->state]++;
	rd[n] = &p->any;
	p->any.row = n;
	fill_row(e, &v[n++], &p->any, now, p->shared, 0, NULL);
	for (size_t j = 0; j < p->ndests; j++) {
		struct xdest *d = p->dests[j];
		unsigned int state[EXH_STATES], own = 0;

		d->row = SIZE_MAX;
		if (!dest_shown(d))
			continue;
		for (int k = 0; k < EXH_STATES; k++)
			own += state[k] = d->state[k] - d->sc_due[k];
		rd[n] = d;
		d->row = n;
		fill_row(e, &v[n++], d, now, p->shared, own, state);
	}
	while (i < npairs) {
		size_t j = i;

		while (j < npairs && pairs[j].dest == pairs[i].dest)
			j++;
		if (pairs[i].dest->row != SIZE_MAX)
			row_top(&v[pairs[i].dest->row], pairs[i].dest, pairs + i, j - i);
		i = j;
	}
	for (size_t j = 0; j < n; j++)
		if (!v[j].ntop)
			row_top(&v[j], rd[j], NULL, 0);	/* failers holding nothing */
	free(pairs);
	qsort(v + 1, n - 1, sizeof(*v), row_cmp);
	return n;
}

struct group {
	size_t start, n;
	double frac;
};

static int group_cmp(const void *a, const void *b)
{
	const struct group *x = a, *y = b;

	if (x->frac != y->frac)
		return x->frac > y->frac ? -1 : 1;
	return x->start < y->start ? -1 : 1;
}

struct exhaustion_row *exhaustion__rows(struct exhaustion *e, __u64 now_ns, size_t *n)
{
	struct exhaustion_row *v = NULL, *out = NULL, *nv;
	struct group *g = calloc(e->npools + 1, sizeof(*g));
	struct xdest **rd = NULL, **nrd;
	size_t cap = 0, cap_rd = 0, ng = 0, total = 0;

	*n = 0;
	if (!g)
		return NULL;
	if (!now_ns)
		now_ns = e->last_ns;
	for (size_t i = 0; i < e->npools; i++) {
		struct xpool *p = e->pools[i];
		size_t want = 1;

		if (!pool_shown(p))
			continue;
		for (size_t j = 0; j < p->ndests; j++)
			want += dest_shown(p->dests[j]);
		nv = array__grow(v, &cap, total + want, sizeof(*v));
		if (nv)
			v = nv;
		nrd = array__grow(rd, &cap_rd, want, sizeof(*rd));
		if (nrd)
			rd = nrd;
		if (!nv || !nrd)
			goto cleanup;
		g[ng].start = total;
		g[ng].n = pool_rows(e, p, now_ns, v + total, rd);
		for (size_t j = 0; j < g[ng].n; j++)
			if (row_frac(&v[total + j]) > g[ng].frac)
				g[ng].frac = row_frac(&v[total + j]);
		total += g[ng++].n;
	}
	qsort(g, ng, sizeof(*g), group_cmp);
	out = malloc((total ? total : 1) * sizeof(*out));
	if (!out)
		goto cleanup;
	for (size_t i = 0; i < ng; i++) {
		memcpy(out + *n, v + g[i].start, g[i].n * sizeof(*out));
		*n += g[i].n;
	}
cleanup:
	free(v);
	free(rd);
	free(g);
	return out;
}

void exhaustion__status(const struct exhaustion *e, struct exhaustion_status *st)
{
	memset(st, 0, sizeof(*st));
	st->events = e->events;
	st->lost = e->lost;
	st->first_ns = e->first_ns;
	st->last_ns = e->last_ns;
	st->base_ns = e->base_ns ? e->base_ns : e->first_ns;
	st->warn_frac = e->o.warn_frac;
	st->warnings = e->nwarn;
	st->checked = e->checked;
	st->check_ns = e->check_ns;
	st->check_kernel = e->chk.kernel;
	st->check_events = e->chk.events;
	st->check_missing = e->chk.missing;
	st->check_extra = e->chk.extra;
	st->check_persistent = e->chk.persistent;
	st->check_unreachable = e->check_unreachable;
}

/* What one process has in a pool: a held port or some failures. */
struct share {
	const struct xproc *proc;
	unsigned int held;
	unsigned long long failures;
};

static int share_cmp(const void *a, const void *b)
{
	const struct share *x = a, *y = b;

	return x->proc < y->proc ? -1 : x->proc > y->proc;
}

static bool share_add(struct share **v, size_t *n, size_t *cap, const struct xproc *proc,
		      unsigned int held, unsigned long long failures)
{
	struct share *nv = array__grow(*v, cap, *n + 1, sizeof(**v));

	if (!nv)
		return false;
	*v = nv;
	nv[(*n)++] = (struct share){proc, held, failures};
	return true;
}

/* The processes of a pool by ports held there now, then failures there. */
static size_t pool_procs(const struct xpool *p, __u64 now, struct exhaustion_proc **out)
{
	struct share *v = NULL;
	size_t n = 0, cap = 0, nout = 0;
	bool ok = true;

	*out = NULL;
	for (struct xsock *s = p->socks; s && ok; s = s->next)
		if (s->proc && counted_at(s, now))
			ok = share_add(&v, &n, &cap, s->proc, 1, 0);
	for (size_t j = 0; j <= p->ndests && ok; j++) {
		const struct xdest *d = j < p->ndests ? p->dests[j] : &p->any;

		for (unsigned int k = 0; k < d->nfails && ok; k++)
			if (d->fails[k].proc)
				ok = share_add(&v, &n, &cap, d->fails[k].proc, 0, d->fails[k].n);
	}
	if (ok && n)
		*out = malloc(n * sizeof(**out));
	if (!*out) {
		free(v);
		return 0;
	}
	qsort(v, n, sizeof(*v), share_cmp);
	for (size_t i = 0; i < n;) {
		unsigned int held = 0;
		unsigned long long failures = 0;
		size_t j;

		for (j = i; j < n && v[j].proc == v[i].proc; j++) {
			held += v[j].held;
			failures += v[j].failures;
		}
		fill_proc(&(*out)[nout++], v[i].proc, held, failures);
		i = j;
	}
	free(v);
	qsort(*out, nout, sizeof(**out), proc_fig_cmp);
	return nout;
}

/* ---- JSON ---- */

/* A bounded (or growing) buffer for one record. */
struct jw {
	char *buf;
	size_t len, cap, limit;	/* content stops at limit; the closing may use cap */
	bool grow, full;
};

static void __attribute__((format(printf, 2, 3))) jw_put(struct jw *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	while (!w->full) {
		size_t room = w->cap - w->len;

		va_start(ap, fmt);
		n = vsnprintf(w->buf + w->len, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			w->full = true;
		} else if ((size_t)n < room && w->len + n <= w->limit) {
			w->len += n;
			return;
		} else if (!w->grow) {
			w->full = true;
		} else {
			size_t cap = 2 * w->cap > w->len + n + 1 ? 2 * w->cap : w->len + n + 1;
			char *b = realloc(w->buf, cap);

			if (!b) {
				w->full = true;
				break;
			}
			w->buf = b;
			w->cap = w->limit = cap;
		}
	}
	if (w->cap)
		w->buf[w->len < w->cap ? w->len : w->cap - 1] = '\0';
}

static void jw_str(struct jw *w, const char *s, size_t max)
{
	char tmp[6 * PT_TASK_COMM_LEN + 3];

	if (max > PT_TASK_COMM_LEN)
		max = PT_TASK_COMM_LEN;
	output__json_str(tmp, s, max);
	jw_put(w, "%s", tmp);
}

static void jw_procs(struct jw *w, const struct exhaustion_proc *v, size_t n)
{
	jw_put(w, "[");
	for (size_t i = 0; i < n; i++) {
		jw_put(w, "%s{\"pid\":%u,\"comm\":", i ? "," : "", v[i].pid);
		jw_str(w, v[i].comm, sizeof(v[i].comm));
		jw_put(w, ",\"held\":%u,\"failures\":%llu}", v[i].held, v[i].failures);
	}
	jw_put(w, "]");
}

static void jw_check(struct jw *w, const struct pool_check *c)
{
	jw_put(w, "\"kernel\":%lu,\"events\":%lu,\"missing\":%lu,\"extra\":%lu,\"persistent\":%lu,"
		  "\"agrees\":%s,\"tw_gone\":%lu",
	       c->kernel, c->events, c->missing, c->extra, c->persistent,
	       c->persistent ? "false" : "true", c->tw_gone);
	/* Only where there are any: a record must fit in a line. */
	if (c->srv_kernel || c->srv_events)
		jw_put(w, ",\"server_time_wait\":{\"kernel\":%lu,\"events\":%lu,\"missing\":%lu,"
			  "\"extra\":%lu}",
		       c->srv_kernel, c->srv_events, c->srv_missing, c->srv_extra);
}

static void jw_row(struct jw *w, const struct exhaustion_row *r)
{
	char la[INET6_ADDRSTRLEN], ra[INET6_ADDRSTRLEN], ebuf[16];
	const char *err = names__errno(r->fail_err, ebuf, sizeof(ebuf));

	jw_put(w, "{");
	if (!r->any) {
		inet_ntop(r->family, r->laddr, la, sizeof(la));
		inet_ntop(r->family, r->raddr, ra, sizeof(ra));
		jw_put(w, "\"family\":%d,\"laddr\":\"%s\",\"raddr\":\"%s\",\"rport\":%u,",
		       r->family == AF_INET6 ? 6 : 4, la, ra, r->rport);
	}
	jw_put(w, "\"occupancy\":%u,\"own\":%u,\"shared\":%u,\"pct\":%.1f,", r->occupancy, r->own,
	       r->shared, r->capacity ? 100.0 * r->occupancy / r->capacity : 0.0);
	if (r->any && r->server_tw)
		jw_put(w, "\"server_time_wait\":%u,", r->server_tw);
	if (!r->any && r->proto == IPPROTO_TCP)
		jw_put(w, "\"connecting\":%u,\"established\":%u,\"closing\":%u,\"time_wait\":%u,",
		       r->state[EXH_CONNECTING], r->state[EXH_ESTABLISHED], r->state[EXH_CLOSING],
		       r->state[EXH_TIME_WAIT]);
	jw_put(w, "\"peak\":%u,\"peak_t_ns\":%llu,\"alloc_per_s\":%.3f,\"release_per_s\":%.3f,",
	       r->peak, (unsigned long long)r->peak_ns, r->alloc_per_s, r->release_per_s);
	if (r->full_in_s < 0)
		jw_put(w, "\"full_in_s\":null,");
	else
		jw_put(w, "\"full_in_s\":%.1f,", r->full_in_s);
	jw_put(w, "\"failures\":%llu", r->failures);
	if (r->failures) {
		jw_put(w, ",\"err\":\"%s\",\"first_fail_t_ns\":%llu,\"last_fail_t_ns\":%llu",
		       err ? err : "", (unsigned long long)r->first_fail_ns,
		       (unsigned long long)r->last_fail_ns);
	}
	if (r->lat_n)
		jw_put(w, ",\"latency\":{\"n\":%llu,\"p50_ns\":%llu,\"p90_ns\":%llu,\"p99_ns\":%llu}",
		       r->lat_n, (unsigned long long)r->lat_p50_ns, (unsigned long long)r->lat_p90_ns,
		       (unsigned long long)r->lat_p99_ns);
	jw_put(w, ",\"procs\":");
	jw_procs(w, r->top, r->ntop);
	jw_put(w, "}");
}

/*
 * The record, one line:
 *   {"type":"exhaustion", "t_ns": figures as of this event time,
 *    "final": true for the end-of-run record, "interval_s", "warn_pct",
 *    "events", "lost" (events seen, kernel records lost), "warnings" (how
 *    many times a destination crossed warn_pct),
 *    "check": {"t_ns", "kernel", "events": ports counted by each,
 *              "missing": in the kernel only, "extra": in the events only,
 *              "persistent": of these, also different at the check before,
 *              "agrees": persistent == 0,
 *              "tw_gone": time-wait sockets gone before their time with
 *              no event (a RST in TIME-WAIT, or none was made), that this
 *              check found and gave back,
 *              "server_time_wait" (where there are any): {"kernel", "events",
 *              "missing", "extra"}:
 *              time-wait sockets of accepted ones (on a listener's port, or
 *              known by cookie), compared apart, as they take no ephemeral
 *              port}      (live runs, after a check)
 *    "pools": [{"netns", "proto", "range": [lo, hi], "capacity" (range
 *        minus reserved), "reserved", "shared" (ports held by bind/listen
 *        and UDP, against every destination),
 *        "all": the pool's own row: what a destination never seen finds,
 *               with bind(0) EADDRINUSE failures, and (TCP, where there
 *               are any) "server_time_wait": time-wait sockets accepted
 *               ones left,
 *        "dests": [{"family", "laddr", "raddr", "rport",
 *            "occupancy" (own + shared), "own", "shared", "pct",
 *            "connecting", "established", "closing", "time_wait" (TCP),
 *            "peak", "peak_t_ns", "alloc_per_s", "release_per_s" (own
 *            ports, over the last 10 s), "full_in_s" (at the net rate of
 *            own and shared ports; null: not filling up),
 *            "failures", "err", "first_fail_t_ns", "last_fail_t_ns",
 *            "latency": {"n", "p50_ns", "p90_ns", "p99_ns"} (connect(),
 *                       the whole run),
 *            "procs": [{"pid", "comm", "held", "failures"}]}, ...],
 *        "more_dests": destinations left out to keep the line short,
 *        "procs": the pool's processes by ports held}]}
 * Times are CLOCK_MONOTONIC ns, as in events. "type" comes first: the log
 * reader skips the record after reading it.
 */
int exhaustion__json(struct exhaustion *e, __u64 now_ns, bool final, char *buf, size_t cap, FILE *f)
{
	struct jw w = {.buf = buf, .cap = cap, .limit = cap > 1024 ? cap - 512 : cap};
	struct exhaustion_row *rows;
	__u64 ref = final || !now_ns ? e->last_ns : now_ns;
	size_t n, i = 0;

	if (!buf) {
		w.grow = true;
		w.cap = w.limit = 64 * 1024;
		w.buf = malloc(w.cap);
		if (!w.buf)
			return -ENOMEM;
	}
	rows = exhaustion__rows(e, ref, &n);
	jw_put(&w, "{\"type\":\"exhaustion\",\"t_ns\":%llu,\"final\":%s,\"interval_s\":%.3f,\"warn_pct\":%.0f,"
		   "\"events\":%llu,\"lost\":%llu,\"warnings\":%lu",
	       (unsigned long long)ref, final ? "true" : "false", e->o.interval_s,
	       e->o.warn_frac * 100, e->events, e->lost, e->nwarn);
	if (e->checked) {
		jw_put(&w, ",\"check\":{\"t_ns\":%llu,", (unsigned long long)e->check_ns);
		jw_check(&w, &e->chk);
		jw_put(&w, ",\"unreachable\":%lu}", e->check_unreachable);
	}
	jw_put(&w, ",\"pools\":[");
	while (rows && i < n && !w.full) {
		const struct exhaustion_row *pr = &rows[i];
		const struct xpool *p = pool_find(e, pr->netns, pr->proto);
		struct exhaustion_proc *procs = NULL;
		size_t np = p ? pool_procs(p, ref, &procs) : 0, nd = 0, more = 0, j;

		jw_put(&w, "%s{\"netns\":%u,\"proto\":\"%s\",\"range\":[%u,%u],\"capacity\":%u,"
			   "\"reserved\":%u,\"shared\":%u,\"all\":",
		       i ? "," : "", pr->netns, names__proto(pr->proto), pr->range_lo, pr->range_hi,
		       pr->capacity, pr->reserved, pr->shared);
		jw_row(&w, pr);
		if (e->checked && p) {
			jw_put(&w, ",\"check\":{\"reachable\":%s,", p->chk.reachable ? "true" : "false");
			jw_check(&w, &p->chk);
			jw_put(&w, "}");
		}
		jw_put(&w, ",\"dests\":[");
		for (j = i + 1; j < n && !rows[j].any; j++) {
			size_t mark = w.len;

			/* The pool itself did not fit: the record is lost, and
			 * a destination must not clear what says so. */
			if (w.full)
				break;
			if (more || (!w.grow && nd >= SNAP_DESTS && !final)) {
				more++;
				continue;
			}
			jw_put(&w, "%s", nd ? "," : "");
			jw_row(&w, &rows[j]);
			if (w.full && !w.grow) {
				/* Fewer destinations, still a whole line. */
				w.len = mark;
				w.full = false;
				more++;
				continue;
			}
			nd++;
		}
		jw_put(&w, "],\"more_dests\":%zu,\"procs\":", more);
		jw_procs(&w, procs, !w.grow && np > SNAP_PROCS ? SNAP_PROCS : np);
		jw_put(&w, "}");
		free(procs);
		i = j;
	}
	w.limit = w.cap;	/* room kept for the closing */
	jw_put(&w, "]}\n");
	free(rows);
	if (w.full) {
		if (!buf)
			free(w.buf);
		return -ENOSPC;
	}
	if (!buf) {
		fwrite(w.buf, 1, w.len, f);
		free(w.buf);
	}
	return w.len;
}

int exhaustion__snapshot(struct exhaustion *e, __u64 now_ns, char *buf, size_t cap)
{
	if (!e->last_snap_ns) {
		e->last_snap_ns = now_ns;
		return 0;
	}
	if (now_ns - e->last_snap_ns < e->interval_ns)
		return 0;
	e->last_snap_ns = now_ns;
	return exhaustion__json(e, now_ns, false, buf, cap, NULL);
}

/* ---- the human report ---- */

static const char *fmt_secs(char *buf, size_t len, __u64 ts, __u64 base)
{
	if (!ts) {
		snprintf(buf, len, "-");
		return buf;
	}
	snprintf(buf, len, "%s%.3f", ts >= base ? "+" : "-",
		 (ts >= base ? ts - base : base - ts) / 1e9);
	return buf;
}

/* "127.0.0.1 > 10.0.0.1:443", "[::1] > [::1]:8080", or the pool's row. */
static const char *fmt_dest(char *buf, size_t len, const struct exhaustion_row *r)
{
	char la[INET6_ADDRSTRLEN], ra[INET6_ADDRSTRLEN];
	bool v6 = r->family == AF_INET6;

	if (r->any) {
		snprintf(buf, len, "%s",
			 r->proto == IPPROTO_UDP ? "every destination (UDP)" : "any new destination");
		return buf;
	}
	inet_ntop(r->family, r->laddr, la, sizeof(la));
	inet_ntop(r->family, r->raddr, ra, sizeof(ra));
	snprintf(buf, len, "%s > %s%s%s:%u", la, v6 ? "[" : "", ra, v6 ? "]" : "", r->rport);
	return buf;
}

void exhaustion__set_names(struct exhaustion *e, struct cgroups *cg)
{
	e->cg = cg;
}

static void report_procs(FILE *f, struct cgroups *cg, const char *indent,
			 const struct exhaustion_proc *v, size_t n)
{
	char comm[ESCAPE_TEXT_LEN(PT_TASK_COMM_LEN)], name[ESCAPE_TEXT_LEN(160)];

	for (size_t i = 0; i < n; i++) {
		const struct cgroup_ident *id = cgroups__lookup(cg, v[i].cgroup_id);

		if (v[i].pid)
			fprintf(f, "%spid %u %s%s%s%s holds %u", i ? ", " : indent, v[i].pid,
				escape__text(comm, v[i].comm, sizeof(v[i].comm)),
				id && id->name[0] ? " [" : "", id ? escape__text(name, id->name, sizeof(id->name)) : "",
				id && id->name[0] ? "]" : "", v[i].held);
		else
			fprintf(f, "%sno process (time-wait, orphans) holds %u", i ? ", " : indent,
				v[i].held);
		if (v[i].failures)
			fprintf(f, ", failed %llu", v[i].failures);
	}
	if (n)
		fputc('\n', f);
}

static void report_dest_details(FILE *f, const struct exhaustion *e, const struct exhaustion_row *r,
				const struct xdest *d, __u64 base)
{
	char a[32], b[32], c[32], ebuf[16];

	if (!r->any && r->proto == IPPROTO_TCP && r->own)
		fprintf(f, "      connecting %u, established %u, closing %u, time-wait %u\n",
			r->state[EXH_CONNECTING], r->state[EXH_ESTABLISHED], r->state[EXH_CLOSING],
			r->state[EXH_TIME_WAIT]);
	if (r->lat_n) {
		fprintf(f, "      %s latency p50 %s, p90 %s, p99 %s (%llu calls)",
			r->proto == IPPROTO_TCP ? "connect()" : "autobind call",
			names__duration(r->lat_p50_ns, a, sizeof(a)),
			names__duration(r->lat_p90_ns, b, sizeof(b)),
			names__duration(r->lat_p99_ns, c, sizeof(c)), r->lat_n);
		if (d && d->nwins) {
			unsigned long long k = d->nwins > LAT_WINDOWS ? d->nwins - LAT_WINDOWS : 0;

			fprintf(f, "; p99 by %gs window:", e->o.interval_s);
			for (; k < d->nwins; k++)
				fprintf(f, " %s", names__duration(d->win_p99[k % LAT_WINDOWS], a,
								  sizeof(a)));
			if (d->win && d->win->count)
				fprintf(f, " %s (now)",
					names__duration(hist_pct(d->win, 99), a, sizeof(a)));
		}
		fputc('\n', f);
	}
	if (r->failures)
		fprintf(f, "      failures: %llu %s, first %s s, last %s s\n", r->failures,
			names__errno(r->fail_err, ebuf, sizeof(ebuf)) ?: "",
			fmt_secs(a, sizeof(a), r->first_fail_ns, base),
			fmt_secs(b, sizeof(b), r->last_fail_ns, base));
	report_procs(f, e->cg, "      ", r->top, r->ntop);
}

static const struct xdest *row_dest(const struct exhaustion *e, const struct exhaustion_row *r)
{
	const struct xpool *p = pool_find(e, r->netns, r->proto);

	struct xdest **slot;

	if (!p)
		return NULL;
	if (r->any)
		return &p->any;
	/* By the index, not a walk: views ask for every row. */
	slot = socktab__get(e->dest_idx, dest_hash(p, r->family, r->laddr, r->raddr, r->rport));
	for (const struct xdest *d = slot ? *slot : NULL; d; d = d->hnext)
		if (d->pool == p && d->family == r->family && d->rport == r->rport &&
		    !memcmp(d->laddr, r->laddr, 16) && !memcmp(d->raddr, r->raddr, 16))
			return d;
	return NULL;
}

int exhaustion__latency(const struct exhaustion *e, const struct exhaustion_row *r,
			const unsigned int *le_exp, size_t n, unsigned long long *cum, __u64 *sum_ns)
{
	const struct xdest *d = row_dest(e, r);
	unsigned int b = 0;
	unsigned long long seen = 0;

	memset(cum, 0, n * sizeof(*cum));
	*sum_ns = 0;
	if (!d || !d->lat)
		return 0;
	/* 2^k ns starts bucket (k - 2) * HIST_SUB: the buckets below hold
	 * exactly the values < 2^k. */
	for (size_t i = 0; i < n; i++) {
		unsigned int end = le_exp[i] <= HIST_SUB_BITS ? 1u << le_exp[i]
			: le_exp[i] > HIST_MAX_EXP ? HIST_BUCKETS
						    : (le_exp[i] - HIST_SUB_BITS + 1) * HIST_SUB;

		for (; b < end && b < HIST_BUCKETS; b++)
			seen += d->lat->n[b];
		cum[i] = seen;
	}
	*sum_ns = d->lat->sum_ns;
	return 1;
}

void exhaustion__report(struct exhaustion *e, FILE *f)
{
	__u64 base = e->base_ns ? e->base_ns : e->first_ns;
	struct exhaustion_row *rows;
	char a[DEST_LEN], b[DEST_LEN];
	size_t n, i = 0;

	rows = exhaustion__rows(e, e->last_ns, &n);
	fprintf(f, "Port exhaustion: %llu events from %s to %s s, %llu lost; warn at %.0f%%\n",
		e->events, fmt_secs(a, sizeof(a), e->first_ns, base),
		fmt_secs(b, sizeof(b), e->last_ns, base), e->lost, e->o.warn_frac * 100);
	if (!n)
		fprintf(f, "No port was taken, held or refused.\n");
	while (rows && i < n) {
		const struct exhaustion_row *pr = &rows[i];
		const struct xpool *p = pool_find(e, pr->netns, pr->proto);
		struct exhaustion_proc *procs = NULL;
		size_t np = p ? pool_procs(p, e->last_ns, &procs) : 0, j, end;
		size_t w = strlen("DESTINATION (local > remote)");

		for (end = i + 1; end < n && !rows[end].any; end++)
			;
		for (j = i; j < end; j++) {
			size_t l = strlen(fmt_dest(a, sizeof(a), &rows[j]));

			w = l > w ? l : w;
		}
		fprintf(f, "\nnetns %u %s: ephemeral range %u-%u, capacity %u (%u reserved)\n", pr->netns,
			names__proto(pr->proto), pr->range_lo, pr->range_hi, pr->capacity, pr->reserved);
		fprintf(f, "  %-*s %11s %5s %6s %10s %8s %7s %8s\n", (int)w, "DESTINATION (local > remote)",
			"HELD/CAP", "USE", "PEAK", "PEAK AT", "ALLOC/s", "REL/s", "FULL IN");
		for (j = i; j < end; j++) {
			const struct exhaustion_row *r = &rows[j];
			char held[32], eta[32], at[32];

			snprintf(held, sizeof(held), "%u/%u", r->occupancy, r->capacity);
			fprintf(f, "  %-*s %11s %4.0f%% %6u %10s %8.1f %7.1f %8s\n", (int)w,
				fmt_dest(a, sizeof(a), r), held,
				r->capacity ? 100.0 * r->occupancy / r->capacity : 0.0, r->peak,
				fmt_secs(at, sizeof(at), r->peak_ns, base), r->alloc_per_s,
				r->release_per_s, names__eta(r->full_in_s, false, eta, sizeof(eta)));
			report_dest_details(f, e, r, row_dest(e, r), base);
		}
		if (pr->server_tw)
			fprintf(f, "  server-side time-wait %u: on listeners' ports, no ephemeral port; each blocks a bind() of its port without SO_REUSEADDR\n",
				pr->server_tw);
		if (np) {
			fprintf(f, "  processes:\n");
			report_procs(f, e->cg, "    ", procs, np > REPORT_PROCS ? REPORT_PROCS : np);
		}
		free(procs);
		i = end;
	}
	if (e->nwarn) {
		fprintf(f, "\nWarnings (%lu; a destination crossed %.0f%%):\n", e->nwarn, e->o.warn_frac * 100);
		for (unsigned long k = 0; k < e->nwarn && k < MAX_WARNINGS; k++) {
			const struct warning *wn = &e->warns[k];
			struct exhaustion_row r = {.any = wn->any, .proto = wn->proto, .family = wn->family,
						   .rport = wn->rport};

			memcpy(r.laddr, wn->laddr, 16);
			memcpy(r.raddr, wn->raddr, 16);
			fprintf(f, "  %s s netns %u %s %s: %u/%u\n", fmt_secs(a, sizeof(a), wn->ts, base),
				wn->netns, names__proto(wn->proto), fmt_dest(b, sizeof(b), &r), wn->occupancy,
				wn->capacity);
		}
	}
	if (e->checked) {
		const struct pool_check *c = &e->chk;

		if (c->persistent)
			fprintf(f, "\nCheck against the kernel's socket table at %s s: DIFFERS by %lu ports (events count %lu, kernel %lu; %lu missing, %lu extra)\n",
				fmt_secs(a, sizeof(a), e->check_ns, base), c->persistent, c->events,
				c->kernel, c->missing, c->extra);
		else
			fprintf(f, "\nCheck against the kernel's socket table at %s s: agrees (%lu ports%s)\n",
				fmt_secs(a, sizeof(a), e->check_ns, base), c->kernel,
				c->missing || c->extra ? "; a few in flight" : "");
		for (size_t k = 0; c->persistent && k < e->npools; k++) {
			const struct xpool *p = e->pools[k];

			if (p->chk.persistent)
				fprintf(f, "  netns %u %s: events %lu, kernel %lu, differ by %lu\n",
					p->ns->inode, names__proto(p->proto), p->chk.events,
					p->chk.kernel, p->chk.persistent);
		}
		if (c->srv_kernel || c->srv_events)
			fprintf(f, "  server-side time-wait sockets: events %lu, kernel %lu%s\n",
				c->srv_events, c->srv_kernel,
				c->srv_missing || c->srv_extra ? " (differ)" : ", agree");
		if (e->check_unreachable)
			fprintf(f, "  (%lu ports counted in namespaces it cannot read any more)\n",
				e->check_unreachable);
		if (e->tw_gone)
			fprintf(f, "  time-wait sockets gone before their time with no event (a RST in TIME-WAIT), found by the checks and given back: %llu\n",
				e->tw_gone);
	}
	if (e->untracked)
		fprintf(f, "\n%llu sockets were not followed (memory limits); figures are low.\n",
			e->untracked);
	free(rows);
	fflush(f);
}

/* ---- porttrace exhaustion FILE ---- */

struct ex_args {
	struct exhaustion_opts o;
	enum output_format fmt;
	char **files;
	int nfiles;
};

static const struct argp_option ex_options[] = {
	{"format", 'f', "FMT", 0, "text (default) or json (one record, as the log's final one)", 0},
	{"warn", 'w', "PCT", 0, "Warning threshold, 1..100, e.g. 80 or 80% (default 80)", 0},
	{"interval", 'i', "SECONDS", 0,
	 "Latency windows, as --interval of the live run (default 10)", 0},
	{},
};

static error_t ex_parse(int key, char *arg, struct argp_state *state)
{
	struct ex_args *a = state->input;

	switch (key) {
	case 'f':
		if (output__parse_format(arg, &a->fmt) || a->fmt == OUTPUT_CSV)
			argp_error(state, "invalid format '%s': expected text or json", arg);
		break;
	case 'w':
		options__warn(state, arg, &a->o.warn_frac);
		break;
	case 'i':
		options__interval(state, arg, &a->o.interval_s);
		break;
	default:
		if (!options__files(key, state, &a->files, &a->nfiles))
			return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

int exhaustion__main(int argc, char **argv)
{
	static const struct argp argp = {
		.options = ex_options,
		.parser = ex_parse,
		.args_doc = "FILE...",
		.doc = "Port exhaustion figures from porttrace JSON logs (-o FILE --format json),\n"
		       "rotated and compressed pieces included: the same figures as the report of\n"
		       "the live run (--exhaustion) that wrote them.\v"
		       "Example:\n  porttrace exhaustion /var/log/porttrace.jsonl --format json",
	};
	struct ex_args a = {.o = {.warn_frac = 0.8, .interval_s = 10}, .fmt = OUTPUT_TEXT};
	struct logreader *r = NULL;
	struct exhaustion *e = NULL;
	int ret = 1;

	argp_err_exit_status = 2;
	argp_parse(&argp, argc, argv, 0, NULL, &a);

	r = logreader__new();
	e = exhaustion__new(&a.o);
	if (!r || !e) {
		p_err("out of memory");
		goto cleanup;
	}
	if (logreader__read_all(r, a.files, a.nfiles, exhaustion__event, e) < 0)
		goto cleanup;
	if (logreader__start_mono_ns(r))
		exhaustion__set_base(e, logreader__start_mono_ns(r));
	if (a.fmt == OUTPUT_JSON) {
		if (exhaustion__json(e, 0, true, NULL, 0, stdout) < 0) {
			p_err("out of memory");
			goto cleanup;
		}
	} else {
		exhaustion__report(e, stdout);
	}
	ret = 0;
cleanup:
	exhaustion__free(e);
	logreader__free(r);
	return ret;
}

/* ---- samples over time ---- */

_Static_assert(HIST_BUCKETS == EXH_LAT_BUCKETS, "exhaustion.h says how long a histogram is");

static void sample_of(const struct xdest *d, struct exhaustion_sample *s)
{
	const struct xpool *p = d->pool;
	bool own = !d->any && p->proto == IPPROTO_TCP;

	memset(s, 0, sizeof(*s));
	s->key = d;
	s->netns = p->ns->inode;
	s->proto = p->proto;
	s->family = d->any ? 0 : d->family;
	s->any = d->any;
	memcpy(s->laddr, d->laddr, 16);
	memcpy(s->raddr, d->raddr, 16);
	s->rport = d->rport;
	s->capacity = pool_capacity(p);
	s->shared = p->shared;
	if (own)
		memcpy(s->state, d->state, sizeof(s->state));
	s->occupancy = (own ? d->own : 0) + p->shared;
	/* UDP destinations have no ports of their own: the pool's peak. */
	s->peak = p->proto == IPPROTO_UDP ? p->any.peak : d->peak;
	s->peak_ns = p->proto == IPPROTO_UDP ? p->any.peak_ns : d->peak_ns;
	s->failures = d->failures;
	s->fail_err = d->fail_err;
	if (d->lat) {
		s->lat = d->lat->n;
		s->lat_n = d->lat->count;
	}
}

int exhaustion__each(struct exhaustion *e, exhaustion_sample_fn fn, void *ctx)
{
	struct exhaustion_sample s;
	int err;

	for (size_t i = 0; i < e->npools; i++) {
		const struct xpool *p = e->pools[i];

		if (!pool_shown(p))
			continue;
		sample_of(&p->any, &s);
		if ((err = fn(ctx, &s)))
			return err;
		for (size_t j = 0; j < p->ndests; j++) {
			if (!dest_shown(p->dests[j]))
				continue;
			sample_of(p->dests[j], &s);
			if ((err = fn(ctx, &s)))
				return err;
		}
	}
	return 0;
}

__u64 exhaustion__lat_pct(const __u32 *now, const __u32 *prev, unsigned int pct,
			  unsigned long long *n)
{
	struct hist h = {};

	for (unsigned int b = 0; now && b < HIST_BUCKETS; b++) {
		h.n[b] = now[b] - (prev ? prev[b] : 0);
		h.count += h.n[b];
	}
	if (n)
		*n = h.count;
	return hist_pct(&h, pct);
}
