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
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "addr.h"
#include "exhaustion_int.h"
#include "array.h"
#include "log.h"
#include "names.h"
#include "sockdiag.h"

/* ---- small tools ---- */

static void rate_add(struct rate *r, __u64 ts, bool up)
{
	__u32 s = ts / NS_PER_S + 1, i;

	if (s + RATE_SLOTS <= r->last)
		return;	/* older than the slots remember */
	/* The seconds between the newest one counted and s counted nothing. */
	for (i = r->last + 1; s > r->last && i <= s && i <= r->last + RATE_SLOTS; i++)
		r->up[i % RATE_SLOTS] = r->down[i % RATE_SLOTS] = 0;
	if (s > r->last)
		r->last = s;
	if (up)
		r->up[s % RATE_SLOTS]++;
	else
		r->down[s % RATE_SLOTS]++;
}

/* Seconds of event time the rates at now average over. */
static double rate_span(const struct exhaustion *e, __u64 now)
{
	double s = now > e->first_ns ? (double)(now - e->first_ns) / NS_PER_S : 0;

	return s < 1 ? 1 : s > RATE_WINDOW ? RATE_WINDOW : s;
}

void rate_get(const struct exhaustion *e, const struct rate *r, __u64 now, double *up,
		     double *down)
{
	__u32 s = now / NS_PER_S + 1;
	unsigned long long u = 0, d = 0;
	double span = rate_span(e, now);

	/* The seconds of the window the slots still hold: (s - WINDOW, s],
	 * and no more than RATE_SLOTS back from the newest. */
	for (__u32 x = r->last < s ? r->last : s; x && x + RATE_WINDOW > s &&
						   x + RATE_SLOTS > r->last; x--) {
		u += r->up[x % RATE_SLOTS];
		d += r->down[x % RATE_SLOTS];
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

/* ---- namespaces, pools, destinations, processes ---- */

static bool port_reserved(const struct xns *ns, __u16 port)
{
	return ns->reserved && ((ns->reserved[port / 64] >> (port % 64)) & 1);
}

unsigned int pool_capacity(const struct xpool *p)
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
	p->armed = socktab__new(65536, sizeof(struct xdest *));
	p->warned = socktab__new(65536, sizeof(struct xdest *));
	if (!p->port_refs || !p->armed || !p->warned) {
		socktab__free(p->port_refs);
		socktab__free(p->armed);
		socktab__free(p->warned);
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
struct xpool *pool_find(const struct exhaustion *e, __u32 netns, __u8 proto)
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

/* ---- what nothing holds is retired ---- */

static void idle_add(struct exhaustion *e, struct xdest *d, __u64 ts)
{
	if (d->any || d->idle)
		return;
	d->idle = true;
	d->idle_ns = ts;
	d->inext = NULL;
	d->iprev = e->idle_tail;
	if (e->idle_tail)
		e->idle_tail->inext = d;
	else
		e->idle_head = d;
	e->idle_tail = d;
}

static void idle_del(struct exhaustion *e, struct xdest *d)
{
	if (!d->idle)
		return;
	if (d->iprev)
		d->iprev->inext = d->inext;
	else
		e->idle_head = d->inext;
	if (d->inext)
		d->inext->iprev = d->iprev;
	else
		e->idle_tail = d->iprev;
	d->idle = false;
}

static void dest_hold(struct exhaustion *e, struct xdest *d)
{
	if (!d->nsocks++)
		idle_del(e, d);
}

static void dest_unhold(struct exhaustion *e, struct xdest *d, __u64 ts)
{
	if (!--d->nsocks)
		idle_add(e, d, ts);
}

static void proc_hold(struct xproc *p)
{
	if (p)
		p->refs++;
}

static void proc_free(struct exhaustion *e, struct xproc *p)
{
	struct xproc **slot = socktab__get(e->by_pid, p->pid);

	if (slot && *slot == p)
		socktab__take(e->by_pid, p->pid, NULL);
	e->procs[p->idx] = e->procs[--e->nprocs];
	e->procs[p->idx]->idx = p->idx;
	if (e->fresh == p)
		e->fresh = NULL;
	free(p);
}

static void proc_unhold(struct exhaustion *e, struct xproc *p)
{
	if (p && !--p->refs)
		proc_free(e, p);
}

static void bucket_del(struct xpool *p, struct xdest *d);

/* d held nothing for DEST_RETIRE_NS: its row goes, its failures stay in
 * its pool's totals. */
/* What a destination holds out of line, and its histograms' bins. */
static void dest_free_parts(struct xdest *d)
{
	hist__free(&d->lat);
	hist__free(&d->win);
	free(d->wins);
	free(d->fail);
}

static void dest_retire(struct exhaustion *e, struct xdest *d)
{
	struct xpool *p = d->pool;
	__u64 h = dest_hash(p, d->family, d->laddr, d->raddr, d->rport);
	struct xdest **slot = socktab__get(e->dest_idx, h);

	idle_del(e, d);
	bucket_del(p, d);
	p->retired++;
	p->retired_failures += d->failures;
	for (unsigned int k = 0; d->fail && k < d->fail->n; k++)
		proc_unhold(e, d->fail->fails[k].proc);
	if (slot && *slot == d) {
		if (d->hnext)
			*slot = d->hnext;
		else
			socktab__take(e->dest_idx, h, NULL);
	} else {
		for (struct xdest *x = slot ? *slot : NULL; x; x = x->hnext) {
			if (x->hnext == d) {
				x->hnext = d->hnext;
				break;
			}
		}
	}
	p->dests[d->idx] = p->dests[--p->ndests];
	p->dests[d->idx]->idx = d->idx;
	e->ndests--;
	dest_free_parts(d);
	slab__free(e->dest_slab, d);
}

static void retire_due(struct exhaustion *e, __u64 ts)
{
	while (e->idle_head && e->idle_head->idle_ns + DEST_RETIRE_NS <= ts)
		dest_retire(e, e->idle_head);
}

struct xdest *dest_find(const struct exhaustion *e, const struct xpool *p, __u8 family,
			const __u8 *laddr, const __u8 *raddr, __u16 rport)
{
	struct xdest **slot = socktab__get(e->dest_idx, dest_hash(p, family, laddr, raddr, rport));

	for (struct xdest *d = slot ? *slot : NULL; d; d = d->hnext)
		if (d->pool == p && d->family == family && d->rport == rport &&
		    !memcmp(d->laddr, laddr, 16) && !memcmp(d->raddr, raddr, 16))
			return d;
	return NULL;
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
	if (e->ndests >= MAX_DESTS)
		return &p->any;
	v = array__grow(p->dests, &p->cap_dests, p->ndests + 1, sizeof(*v));
	d = slab__zalloc(e->dest_slab);
	if (!v || !d) {
		slab__free(e->dest_slab, d);
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
		slab__free(e->dest_slab, d);
		return &p->any;
	}
	d->idx = p->ndests;
	p->dests[p->ndests++] = d;
	e->ndests++;
	/* Nothing holds it yet: a failure, a latency, or a socket to come. */
	idle_add(e, d, ev->ts_ns);
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
	p->idx = e->nprocs;
	e->procs[e->nprocs++] = p;
	socktab__put(e->by_pid, p->pid, &p);
	/* Kept only if a socket or a failure holds it by the event's end. */
	e->fresh = p;
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
	char la[INET6_ADDRSTRLEN], ra[ADDR_STRLEN];

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
	p_warn("netns %u %s %s > %s is %u%% full (%u/%u ports)", p->ns->inode,
	       names__proto(p->proto), addr__str(la, d->family, d->laddr),
	       addr__str_port(ra, d->family, d->raddr, d->rport), occ * 100 / cap, occ, cap);
}

static bool over(const struct exhaustion *e, unsigned int occ, unsigned int cap)
{
	return cap && !(occ < e->o.warn_frac * cap);
}

/* The least occupancy that warns, with the pool's capacity now. */
static void pool_threshold(struct exhaustion *e, struct xpool *p)
{
	unsigned int cap = pool_capacity(p), t;

	if (!cap) {
		p->threshold = 0;
		return;
	}
	t = (unsigned int)(e->o.warn_frac * cap);
	while (t > 0 && over(e, t - 1, cap))
		t--;
	while (!over(e, t, cap))
		t++;
	p->threshold = t;
}

static void bucket_del(struct xpool *p, struct xdest *d)
{
	if (!d->bucketed)
		return;
	if (d->bprev) {
		d->bprev->bnext = d->bnext;
	} else {
		struct socktab *t = d->bwarned ? p->warned : p->armed;

		if (d->bnext)
			socktab__put(t, d->bown, &d->bnext);
		else
			socktab__take(t, d->bown, NULL);
	}
	if (d->bnext)
		d->bnext->bprev = d->bprev;
	d->bucketed = false;
}

/* Only destinations with ports of their own: one with none is what the
 * pool's row says, and warns with it. */
static void bucket_add(struct xpool *p, struct xdest *d)
{
	struct socktab *t = d->warned ? p->warned : p->armed;
	struct xdest **head;

	if (d->any || !d->own || p->proto != IPPROTO_TCP)
		return;
	head = socktab__get(t, d->own);
	d->bprev = NULL;
	d->bnext = head ? *head : NULL;
	if (!socktab__put(t, d->own, &d))
		return;
	if (d->bnext)
		d->bnext->bprev = d;
	d->bucketed = true;
	d->bown = d->own;
	d->bwarned = d->warned;
}

/* The most the shared count reached after change seq (0: no change since),
 * and when: the first entry of the stack past seq. */
static unsigned int shared_since(const struct xpool *p, __u64 seq, __u64 *ts)
{
	size_t lo = 0, hi = p->npeaks;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (p->peaks[mid].seq_last <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == p->npeaks)
		return 0;
	/* Reached before seq as well: the last time is one it held since. */
	*ts = p->peaks[lo].seq_first > seq ? p->peaks[lo].ts_first : p->peaks[lo].ts_last;
	return p->peaks[lo].val;
}

/* d's peak, with what the shared count did since its own count last moved. */
void dest_peak(const struct xdest *d, unsigned int *peak, __u64 *peak_ns)
{
	__u64 ts = 0;
	unsigned int m = shared_since(d->pool, d->own_seq, &ts);

	*peak = d->peak;
	*peak_ns = d->peak_ns;
	if (!d->any && m && d->own_then + m > *peak) {
		*peak = d->own_then + m;
		*peak_ns = ts;
	}
}

/* After d's occupancy may have changed: peak, and a warning on the way up
 * through warn_frac (again only after it fell below). */
static void dest_touch(struct exhaustion *e, struct xdest *d, __u64 ts)
{
	unsigned int occ = dest_occupancy(d), cap = pool_capacity(d->pool);

	if (!d->any) {
		dest_peak(d, &d->peak, &d->peak_ns);
		d->own_then = d->own;
		d->own_seq = d->pool->seq;
		bucket_del(d->pool, d);
	}
	if (occ > d->peak) {
		d->peak = occ;
		d->peak_ns = ts;
	}
	if (cap && !over(e, occ, cap)) {
		d->warned = false;
	} else if (cap && !d->warned) {
		d->warned = true;
		warn_add(e, d, ts, occ, cap);
	}
	bucket_add(d->pool, d);
}

/*
 * The shared count moved from before: every destination of the pool sees
 * it, yet only those it takes across the threshold are visited (their own
 * count is in the one bucket per step); peaks are settled when read. UDP's
 * destinations have no ports of their own: its pool row says it all.
 */
static void pool_touch(struct exhaustion *e, struct xpool *p, unsigned int before, __u64 ts)
{
	unsigned int t = p->threshold, now = p->shared, lo, hi;
	struct socktab *from = now > before ? p->armed : p->warned;
	struct shared_peak *v;

	if (now == before)
		return;
	p->seq++;
	while (p->npeaks && p->peaks[p->npeaks - 1].val < now)
		p->npeaks--;
	if (p->npeaks && p->peaks[p->npeaks - 1].val == now) {
		p->peaks[p->npeaks - 1].seq_last = p->seq;
		p->peaks[p->npeaks - 1].ts_last = ts;
	} else if ((v = array__grow(p->peaks, &p->cap_peaks, p->npeaks + 1, sizeof(*v)))) {
		p->peaks = v;
		v[p->npeaks++] = (struct shared_peak){p->seq, ts, p->seq, ts, now};
	}
	dest_touch(e, &p->any, ts);
	if (!t || p->proto != IPPROTO_TCP)
		return;
	/* Up: armed ones with own in [t - now, t - before); down: warned
	 * ones with own in [t - before, t - now). */
	lo = now > before ? (t > now ? t - now : 0) : (t > before ? t - before : 0);
	hi = now > before ? (t > before ? t - before : 0) : (t > now ? t - now : 0);
	for (unsigned int own = lo ? lo : 1; own < hi; own++) {
		struct xdest **head;

		while ((head = socktab__get(from, own)))
			dest_touch(e, *head, ts);
	}
}

static bool sock_counts(const struct xsock *s)
{
	const struct xns *ns = s->pool->ns;

	/* A connect() counts from when its port is known: when the syscall
	 * returns (even -EINPROGRESS) or the handshake ends. Counting it from
	 * SYN_SENT would count the attempts that find no port, too. */
	if (s->cls == XC_SERVER || !s->lport)
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
	pool_touch(e, s->pool, shared_before, ts);
}

struct xsock *sock_get(struct exhaustion *e, __u64 cookie)
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
	proc_hold(s->proc);
	if (d)
		dest_hold(e, d);
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
	pool_touch(e, p, shared, ts);
	if (s->dest)
		dest_unhold(e, s->dest, ts);
	proc_unhold(e, s->proc);
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
		unsigned int before;

		if (!p)
			continue;
		before = p->shared;
		pool_threshold(e, p);
		for (struct xsock *s = p->socks; s; s = s->next)
			sock_begin(s);
		for (struct xsock *s = p->socks; s; s = s->next) {
			if (sock_counts(s)) {
				sock_apply(s, 1);
				s->counted = true;
			}
		}
		/* The threshold may have moved: every destination again. */
		pool_touch(e, p, before, ts);
		dest_touch(e, &p->any, ts);
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

static void failure(struct exhaustion *e, struct xdest *d, struct xproc *proc,
		    const struct pt_event *ev)
{
	struct xfails *x = d->fail;
	struct xfail *f = NULL;

	/* Without memory for the detail, the failure is still counted. */
	if (!x && !(x = d->fail = calloc(1, sizeof(*x)))) {
		d->failures++;
		return;
	}
	if (!d->failures++)
		x->first_ns = ev->ts_ns;
	x->last_ns = ev->ts_ns;
	x->err = ev->err;
	x->by[ev->err == EADDRNOTAVAIL ? EXH_ERR_ADDRNOTAVAIL
	      : ev->err == EADDRINUSE  ? EXH_ERR_ADDRINUSE
	      : ev->err == EAGAIN      ? EXH_ERR_AGAIN
				       : EXH_ERR_OTHER]++;
	for (unsigned int i = 0; i < x->n && !f; i++)
		if (x->fails[i].proc == proc)
			f = &x->fails[i];
	if (!f && x->n < MAX_FAIL_PROCS) {
		f = &x->fails[x->n++];
		f->proc = proc;
		proc_hold(proc);
	} else if (!f) {
		f = &x->fails[MAX_FAIL_PROCS - 1];
		proc_unhold(e, f->proc);
		f->proc = NULL;	/* the last slot folds the rest */
	}
	f->n++;
}

static void latwin_close(struct xdest *d)
{
	if (d->wins || (d->wins = calloc(1, sizeof(*d->wins))))
		d->wins->p99[d->wins->n++ % LAT_WINDOWS] = hist__pct(&d->win, 99);
	hist__reset(&d->win);
}

/* Latency windows are interval_s long, counted from the first event, so a
 * log read back cuts them where the live run did. */
static void latency(struct exhaustion *e, struct xdest *d, __u64 ns, __u64 ts)
{
	__u64 idx = ts > e->first_ns ? (ts - e->first_ns) / e->interval_ns : 0;

	if (!ns)
		return;
	if (!d->lat.count)
		d->win_idx = idx;
	if (idx > d->win_idx) {
		if (d->win.count)
			latwin_close(d);
		d->win_idx = idx;
	}
	if (!hist__add(&d->lat, ns))
		d->lat_sum_ns += ns;
	hist__add(&d->win, ns);
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
bool classify_existing(struct socktab *listen, const struct pt_event *ev,
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
	/* A time-wait socket's end comes from the decoder, computed from
	 * the time the kernel said it has left. */
	s->seeded = true;
	s->state = state;
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
	if (!s)
		return;		/* accepted sockets: the listener's port */
	if (ev->newstate == TCP_CLOSE) {
		/* The port event that follows says what became of the port. */
		if (ev->flags & (PT_F_RELEASE | PT_F_TIMEWAIT))
			return;
		/* A connect() that found no port held none: its alloc-fail
		 * (the decoder's, with this socket's source address) counts
		 * the failure. A bound port stays until the socket is closed, and
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
		failure(e, d, proc_of(e, ev), ev);
		if (s && s->cls != XC_SHARED)
			sock_free(e, s, ev->ts_ns);
		break;
	}
	case PT_PORT_BIND_FAIL:
		/* bind(addr, 0) found the range full. */
		if (ev->err == EADDRINUSE && !ev->req_port)
			failure(e, &p->any, proc_of(e, ev), ev);
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
		if (s) {
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
	retire_due(e, ev->ts_ns);
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
	if (e->fresh && !e->fresh->refs)
		proc_free(e, e->fresh);
	e->fresh = NULL;
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
	e->dest_slab = slab__new(sizeof(struct xdest));
	if (!e->dest_slab || !e->socks || !e->nss || !e->dest_idx || !e->port_idx || !e->by_pid || !e->listen ||
	    !e->mismatch) {
		exhaustion__free(e);
		return NULL;
	}
	return e;
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
		for (size_t j = 0; j < p->ndests; j++)
			dest_free_parts(p->dests[j]);
		dest_free_parts(&p->any);
		free(p->dests);
		free(p->peaks);
		socktab__free(p->port_refs);
		socktab__free(p->armed);
		socktab__free(p->warned);
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
	socktab__free(e->socks);
	socktab__free(e->nss);
	socktab__free(e->dest_idx);
	socktab__free(e->port_idx);
	socktab__free(e->by_pid);
	socktab__free(e->listen);
	socktab__free(e->mismatch);
	slab__destroy(e->dest_slab);
	free(e);
}

void exhaustion__set_base(struct exhaustion *e, __u64 base_ns)
{
	e->base_ns = base_ns;
}

