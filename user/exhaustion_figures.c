// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * exhaustion's figures: the rows of every pool and destination at a given
 * time (occupancy, states, peak, rates, forecast, failures, percentiles,
 * the processes behind them), for the report, the records and top.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "exhaustion_int.h"
#include "array.h"

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
	for (unsigned int k = 0; d->fail && k < d->fail->n; k++) {
		const struct xproc *p = d->fail->fails[k].proc;
		size_t i;

		for (i = 0; i < nc; i++)
			if (cand[i].pid == (p ? p->pid : 0) && (!p || !memcmp(cand[i].comm, p->comm, PT_TASK_COMM_LEN)))
				break;
		if (i < nc)
			cand[i].failures += d->fail->fails[k].n;
		else if (nc < 64)
			fill_proc(&cand[nc++], p, 0, d->fail->fails[k].n);
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
		if (!s->counted)
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

/* A destination's own count as its row says it (TCP only). */
static unsigned int dest_own(const struct xdest *d)
{
	unsigned int own = 0;

	if (d->pool->proto != IPPROTO_TCP)
		return 0;
	for (int k = 0; k < EXH_STATES; k++)
		own += d->state[k];
	return own;
}

static void fill_row(const struct exhaustion *e, struct exhaustion_row *r, const struct xdest *d,
		     __u64 now, unsigned int shared)
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
	r->own = d->any ? 0 : dest_own(d);
	r->occupancy = r->own + shared;
	if (!d->any && p->proto == IPPROTO_TCP)
		memcpy(r->state, d->state, sizeof(r->state));
	/* UDP destinations have no ports of their own: the pool's peak. */
	if (p->proto == IPPROTO_UDP) {
		r->peak = p->any.peak;
		r->peak_ns = p->any.peak_ns;
	} else {
		dest_peak(d, &r->peak, &r->peak_ns);
	}
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
	if (d->fail) {
		r->first_fail_ns = d->fail->first_ns;
		r->last_fail_ns = d->fail->last_ns;
		r->fail_err = d->fail->err;
		memcpy(r->fail_by, d->fail->by, sizeof(r->fail_by));
	}
	r->allocs = d->allocs;
	r->releases = d->releases;
	if (d->lat.count) {
		r->lat_n = d->lat.count;
		r->lat_p50_ns = hist__pct(&d->lat, 50);
		r->lat_p90_ns = hist__pct(&d->lat, 90);
		r->lat_p99_ns = hist__pct(&d->lat, 99);
	}
}

static bool dest_shown(const struct xdest *d)
{
	return d->own || d->failures || d->lat.count || d->allocs;
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

/*
 * row_cmp's order on the destinations of one pool, read from them before
 * any row is made: capacity and shared count are the pool's, so the
 * fullest is the one with the most ports of its own. Equal ones keep the
 * order of p->dests, as the (stable) sort of every row does.
 */
static bool dest_before(const struct xdest *x, const struct xdest *y, bool cap)
{
	unsigned int ox = cap ? dest_own(x) : 0, oy = cap ? dest_own(y) : 0;
	int c;

	if (ox != oy)
		return ox > oy;
	if (x->failures != y->failures)
		return x->failures > y->failures;
	c = memcmp(x->raddr, y->raddr, 16);
	return c ? c < 0 : x->idx < y->idx;
}

/*
 * The max fullest destinations worth a row into top (max 0: all of them, in
 * p->dests order), in row order when max is set; returns how many, and
 * how many were worth a row in *shown. One pass, a sorted list of at most
 * max: the cost of the figures follows what they show, not the number of
 * destinations (beyond reading each once).
 */
static size_t pool_select(const struct xpool *p, size_t max, struct xdest **top, size_t *shown)
{
	bool cap = pool_capacity(p) != 0;
	size_t n = 0;

	*shown = 0;
	for (size_t j = 0; j < p->ndests; j++) {
		struct xdest *d = p->dests[j];
		size_t at;

		d->row = UINT32_MAX;
		if (!dest_shown(d))
			continue;
		++*shown;
		if (!max) {
			top[n++] = d;
			continue;
		}
		if (n == max && !dest_before(d, top[n - 1], cap))
			continue;
		at = n < max ? n++ : n - 1;
		for (; at && dest_before(d, top[at - 1], cap); at--)
			top[at] = top[at - 1];
		top[at] = d;
	}
	return n;
}

/* Rows of one pool into v (pool row first, then destinations fullest
 * first, at most max of them; 0: all); returns how many. */
static size_t pool_rows(struct exhaustion *e, struct xpool *p, __u64 now, size_t max,
			struct exhaustion_row *v, struct xdest **rd)
{
	size_t npairs, n = 0, i = 0, nd, shown;
	struct pair *pairs = pool_pairs(p, now, &npairs);

	rd[n] = &p->any;
	p->any.row = n;
	fill_row(e, &v[n++], &p->any, now, p->shared);
	nd = pool_select(p, max, rd + 1, &shown);
	v[0].dests = shown;
	for (size_t j = 1; j <= nd; j++) {
		struct xdest *d = rd[j];

		d->row = n;
		fill_row(e, &v[n++], d, now, p->shared);
	}
	while (i < npairs) {
		size_t j = i;

		while (j < npairs && pairs[j].dest == pairs[i].dest)
			j++;
		if (pairs[i].dest->row != UINT32_MAX)
			row_top(&v[pairs[i].dest->row], pairs[i].dest, pairs + i, j - i);
		i = j;
	}
	for (size_t j = 0; j < n; j++)
		if (!v[j].ntop)
			row_top(&v[j], rd[j], NULL, 0);	/* failers holding nothing */
	free(pairs);
	if (!max)
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

struct exhaustion_row *exhaustion__rows_top(struct exhaustion *e, __u64 now_ns, size_t max,
					   size_t *n)
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
		if (max)
			want += p->ndests < max ? p->ndests : max;
		else
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
		g[ng].n = pool_rows(e, p, now_ns, max, v + total, rd);
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

struct exhaustion_row *exhaustion__rows(struct exhaustion *e, __u64 now_ns, size_t *n)
{
	return exhaustion__rows_top(e, now_ns, 0, n);
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
	st->check_dump_ns = e->check_dump_ns;
	st->check_apply_ns = e->check_apply_ns;
	st->check_kernel = e->chk.kernel;
	st->check_events = e->chk.events;
	st->check_missing = e->chk.missing;
	st->check_extra = e->chk.extra;
	st->check_persistent = e->chk.persistent;
	st->check_unreachable = e->check_unreachable;
	st->dests = e->ndests;
	st->procs = e->nprocs;
	st->socks = socktab__count(e->socks);
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
size_t pool_procs(const struct xpool *p, __u64 now, struct exhaustion_proc **out)
{
	struct share *v = NULL;
	size_t n = 0, cap = 0, nout = 0;
	bool ok = true;

	*out = NULL;
	for (struct xsock *s = p->socks; s && ok; s = s->next)
		if (s->proc && s->counted)
			ok = share_add(&v, &n, &cap, s->proc, 1, 0);
	for (size_t j = 0; j <= p->ndests && ok; j++) {
		const struct xdest *d = j < p->ndests ? p->dests[j] : &p->any;

		for (unsigned int k = 0; d->fail && k < d->fail->n && ok; k++)
			if (d->fail->fails[k].proc)
				ok = share_add(&v, &n, &cap, d->fail->fails[k].proc, 0,
					       d->fail->fails[k].n);
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


/* ---- samples over time (the HTML report) ---- */

_Static_assert(HIST_BUCKETS == EXH_LAT_BUCKETS, "exhaustion.h says how long a histogram is");

static void sample_of(const struct xdest *d, struct exhaustion_sample *s, __u32 *dense)
{
	const struct xpool *p = d->pool;
	bool own = !d->any && p->proto == IPPROTO_TCP;

	memset(s, 0, sizeof(*s));
	/* By id, never reused: a retired destination's memory may be. */
	s->key = (const void *)(uintptr_t)d->id;
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
	if (p->proto == IPPROTO_UDP) {
		s->peak = p->any.peak;
		s->peak_ns = p->any.peak_ns;
	} else {
		dest_peak(d, &s->peak, &s->peak_ns);
	}
	s->failures = d->failures;
	s->fail_err = d->fail ? d->fail->err : 0;
	if (d->lat.count) {
		hist__dense(&d->lat, dense);
		s->lat = dense;
		s->lat_n = d->lat.count;
	}
}

int exhaustion__each(struct exhaustion *e, exhaustion_sample_fn fn, void *ctx)
{
	static __u32 dense[HIST_BUCKETS];	/* valid while fn runs */
	struct exhaustion_sample s;
	int err;

	for (size_t i = 0; i < e->npools; i++) {
		const struct xpool *p = e->pools[i];

		if (!pool_shown(p))
			continue;
		sample_of(&p->any, &s, dense);
		if ((err = fn(ctx, &s)))
			return err;
		for (size_t j = 0; j < p->ndests; j++) {
			if (!dest_shown(p->dests[j]))
				continue;
			sample_of(p->dests[j], &s, dense);
			if ((err = fn(ctx, &s)))
				return err;
		}
	}
	return 0;
}

__u64 exhaustion__lat_pct(const __u32 *now, const __u32 *prev, unsigned int pct,
			  unsigned long long *n)
{
	unsigned long long count = 0, rank, seen = 0;

	for (unsigned int b = 0; now && b < HIST_BUCKETS; b++)
		count += now[b] - (prev ? prev[b] : 0);
	if (n)
		*n = count;
	if (!count)
		return 0;
	rank = (count * pct + 99) / 100;
	for (unsigned int b = 0; b < HIST_BUCKETS; b++) {
		seen += now[b] - (prev ? prev[b] : 0);
		if (seen >= (rank ? rank : 1))
			return hist__bucket_value(b);
	}
	return hist__bucket_value(HIST_BUCKETS - 1);
}

int exhaustion__latency(const struct exhaustion *e, const struct exhaustion_row *r,
			const unsigned int *le_exp, size_t n, unsigned long long *cum, __u64 *sum_ns)
{
	const struct xpool *p = pool_find(e, r->netns, r->proto);
	const struct xdest *d = !p ? NULL : r->any ? &p->any
			      : dest_find(e, p, r->family, r->laddr, r->raddr, r->rport);
	__u32 dense[HIST_BUCKETS];
	const unsigned int sub = 1u << HIST_SUB_BITS;
	unsigned int b = 0;
	unsigned long long seen = 0;

	memset(cum, 0, n * sizeof(*cum));
	*sum_ns = 0;
	if (!d || !d->lat.count)
		return 0;
	hist__dense(&d->lat, dense);
	/* 2^k ns starts bucket (k - 2) * 8: the buckets below hold exactly
	 * the values < 2^k. */
	for (size_t i = 0; i < n; i++) {
		unsigned int end = le_exp[i] <= HIST_SUB_BITS ? 1u << le_exp[i]
			: le_exp[i] > HIST_MAX_EXP ? HIST_BUCKETS
						    : (le_exp[i] - HIST_SUB_BITS + 1) * sub;

		for (; b < end && b < HIST_BUCKETS; b++)
			seen += dense[b];
		cum[i] = seen;
	}
	*sum_ns = d->lat_sum_ns;
	return 1;
}
