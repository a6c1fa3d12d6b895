// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Families follow Prometheus's naming rules: one porttrace_ prefix, base
 * units (seconds), _total on counters, # HELP and # TYPE before each. A
 * family with no sample is still declared, so that a rule or dashboard
 * finds it whatever the host has seen.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "addr.h"
#include "metrics.h"
#include "array.h"
#include "names.h"
#include "output.h"
#include "socktab.h"

#define MAX_LISTENERS (1u << 20)
#define NS_PER_S 1e9

/* connect() latency buckets: 4^k microsecond-ish steps, each a power of
 * two of nanoseconds so that the accounting's histogram answers exactly
 * (2^14 ns = 16.4 us ... 2^34 ns = 17.2 s). */
static const unsigned int le_exp[] = {14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34};
#define NLE (sizeof(le_exp) / sizeof(le_exp[0]))

static const char *const err_label[EXH_ERRS] = {"EADDRNOTAVAIL", "EADDRINUSE", "EAGAIN", "other"};
static const char *const state_label[EXH_STATES] = {"connecting", "established", "closing",
						    "time_wait"};

/* Failures of one owner: a process name in one cgroup. */
struct owner {
	char comm[PT_TASK_COMM_LEN];
	__u64 cgroup;
	unsigned long long n[EXH_ERRS];
};

struct listener {
	__u32 netns;
	__u8 proto;
	bool in_range;
	const char *scope;	/* output__listen_scope() */
};

/* Listeners counted by what their series says; one row per kind seen. */
struct listen_count {
	__u32 netns;
	__u8 proto;
	bool in_range;
	const char *scope;
	unsigned long n;
};

struct metrics {
	unsigned int max_dests;
	struct exhaustion *ex;
	struct cgroups *cg;
	struct netns *ns;
	unsigned long long by_type[PT_PORT_KIND_MAX + 2];	/* 0 state, kinds, lost */
	struct owner *owners;	/* up to 4 * max_dests, then other_owner */
	size_t nowners;
	unsigned long long other_owner[EXH_ERRS];
	struct socktab *listeners;	/* cookie -> struct listener */
	struct listen_count *lc;
	size_t nlc, cap_lc;
};

struct metrics *metrics__new(unsigned int max_dests, struct exhaustion *ex, struct cgroups *cg,
			     struct netns *ns)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->max_dests = max_dests;
	m->ex = ex;
	m->cg = cg;
	m->ns = ns;
	m->owners = calloc(4 * (size_t)max_dests, sizeof(*m->owners));
	m->listeners = socktab__new(MAX_LISTENERS, sizeof(struct listener));
	if (!m->owners || !m->listeners) {
		metrics__free(m);
		return NULL;
	}
	return m;
}

void metrics__free(struct metrics *m)
{
	if (!m)
		return;
	free(m->owners);
	socktab__free(m->listeners);
	free(m->lc);
	free(m);
}

static int err_class(int err)
{
	return err == EADDRNOTAVAIL ? EXH_ERR_ADDRNOTAVAIL
	       : err == EADDRINUSE  ? EXH_ERR_ADDRINUSE
	       : err == EAGAIN	    ? EXH_ERR_AGAIN
				    : EXH_ERR_OTHER;
}

static void owner_failure(struct metrics *m, const struct pt_event *ev)
{
	char comm[PT_TASK_COMM_LEN] = "";
	__u64 cg = 0;
	size_t i;

	if (ev->flags & PT_F_OWNER_KNOWN) {
		memcpy(comm, ev->owner.comm, sizeof(comm));
		cg = ev->owner.cgroup_id;
	}
	for (i = 0; i < m->nowners; i++)
		if (m->owners[i].cgroup == cg && !memcmp(m->owners[i].comm, comm, sizeof(comm)))
			break;
	if (i == m->nowners) {
		if (m->nowners == 4 * (size_t)m->max_dests) {
			m->other_owner[err_class(ev->err)]++;
			return;
		}
		memcpy(m->owners[i].comm, comm, sizeof(comm));
		m->owners[i].cgroup = cg;
		m->nowners++;
	}
	m->owners[i].n[err_class(ev->err)]++;
}

/* A listener enters (dir 1) or leaves (-1) its count. */
static void listen_count(struct metrics *m, const struct listener *l, int dir)
{
	struct listen_count *v;
	size_t i;

	for (i = 0; i < m->nlc; i++)
		if (m->lc[i].netns == l->netns && m->lc[i].proto == l->proto &&
		    !strcmp(m->lc[i].scope, l->scope) && m->lc[i].in_range == l->in_range)
			break;
	if (i == m->nlc) {
		if (dir < 0)
			return;
		/* A kind no listener has any more makes room. */
		for (i = 0; i < m->nlc && m->lc[i].n; i++)
			;
		if (i == m->nlc) {
			v = array__grow(m->lc, &m->cap_lc, m->nlc + 1, sizeof(*v));
			if (!v)
				return;
			m->lc = v;
			m->nlc++;
		}
		m->lc[i] = (struct listen_count){.netns = l->netns, .proto = l->proto,
						 .scope = l->scope, .in_range = l->in_range};
	}
	m->lc[i].n += dir;
}

static void listener_gone(struct metrics *m, __u64 cookie)
{
	struct listener l;

	if (socktab__take(m->listeners, cookie, &l))
		listen_count(m, &l, -1);
}

int metrics__event(void *ctx, const struct pt_event *ev)
{
	struct metrics *m = ctx;

	switch (ev->type) {
	case PT_EV_STATE:
		m->by_type[0]++;
		/* A listener that closes is gone; its release may come later. */
		if (ev->oldstate == TCP_LISTEN)
			listener_gone(m, ev->sk.cookie);
		break;
	case PT_EV_LOST:
		m->by_type[PT_PORT_KIND_MAX + 1]++;
		break;
	case PT_EV_PORT:
		m->by_type[ev->kind < PT_PORT_KIND_MAX ? ev->kind : 0]++;
		if (ev->kind == PT_PORT_ALLOC_FAIL ||
		    (ev->kind == PT_PORT_BIND_FAIL && ev->err == EADDRINUSE && !ev->req_port))
			owner_failure(m, ev);
		if (ev->kind == PT_PORT_LISTEN ||
		    (ev->kind == PT_PORT_EXISTING && ev->newstate == TCP_LISTEN &&
		     ev->sk.proto == IPPROTO_TCP)) {
			struct listener l = {.netns = ev->sk.netns,
					     .proto = ev->sk.proto,
					     .scope = output__listen_scope(ev->sk.family, ev->sk.laddr),
					     .in_range = pt_event_in_range(ev)};

			listener_gone(m, ev->sk.cookie);
			if (socktab__put(m->listeners, ev->sk.cookie, &l))
				listen_count(m, &l, 1);
		} else if (ev->kind == PT_PORT_RELEASE) {
			listener_gone(m, ev->sk.cookie);
		}
		break;
	}
	return 0;
}

/* ---- the exposition ---- */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, quote and newline escaped, as the format asks;
 * bytes that are not printable ASCII become '?', so the value is UTF-8. */
static void label(FILE *f, const char *name, const char *v, size_t max, bool first)
{
	fprintf(f, "%s%s=\"", first ? "" : ",", name);
	for (size_t i = 0; i < max && v[i]; i++) {
		unsigned char c = v[i];

		if (c == '\\' || c == '"')
			fputc('\\', f), fputc(c, f);
		else if (c < 0x20 || c >= 0x7f)
			fputc('?', f);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void value(FILE *f, double v)
{
	if (isinf(v))
		fputs(v > 0 ? " +Inf\n" : " -Inf\n", f);
	else if (v == (double)(long long)v && fabs(v) < 1e15)
		fprintf(f, " %lld\n", (long long)v);
	else
		fprintf(f, " %.9g\n", v);
}

/* Labels of a destination row: the pool row (any) has no destination
 * labels; "other" stands for every destination past the cap. */
struct dest_labels {
	char netns[16], laddr[INET6_ADDRSTRLEN], raddr[INET6_ADDRSTRLEN], rport[8];
	const char *proto;
	bool any;
};

static void dest_labels(const struct exhaustion_row *r, struct dest_labels *l)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->netns, sizeof(l->netns), "%u", r->netns);
	l->proto = names__proto(r->proto);
	l->any = r->any;
	if (r->any)
		return;
	addr__str(l->laddr, r->family, r->laddr);
	addr__str(l->raddr, r->family, r->raddr);
	snprintf(l->rport, sizeof(l->rport), "%u", r->rport);
}

static void put_dest(FILE *f, const char *name, const struct dest_labels *l)
{
	fputs(name, f);
	fputc('{', f);
	if (l) {
		label(f, "netns", l->netns, sizeof(l->netns), true);
		label(f, "proto", l->proto, 8, false);
		if (!l->any) {
			label(f, "laddr", l->laddr, sizeof(l->laddr), false);
			label(f, "raddr", l->raddr, sizeof(l->raddr), false);
			label(f, "rport", l->rport, sizeof(l->rport), false);
		}
	} else {
		label(f, "netns", "other", 8, true);
		label(f, "proto", "other", 8, false);
		label(f, "laddr", "other", 8, false);
		label(f, "raddr", "other", 8, false);
		label(f, "rport", "other", 8, false);
	}
}

/* The figures of one destination series: a row, or the sum past the cap. */
struct dest_fig {
	const struct exhaustion_row *row;	/* NULL: other */
	struct dest_labels l;
	unsigned int state[EXH_STATES];
	double occupied, peak, full_in;
	unsigned long long allocs, releases, fail_by[EXH_ERRS];
	unsigned long long cum[NLE];
	unsigned long long lat_n;
	__u64 lat_sum_ns;
	bool has_lat;
};

static void fig_of(struct metrics *m, const struct exhaustion_row *r, struct dest_fig *d)
{
	memset(d, 0, sizeof(*d));
	d->row = r;
	dest_labels(r, &d->l);
	memcpy(d->state, r->state, sizeof(d->state));
	d->occupied = r->occupancy;
	d->peak = r->peak;
	d->full_in = r->full_in_s < 0 ? INFINITY : r->full_in_s;
	d->allocs = r->allocs;
	d->releases = r->releases;
	memcpy(d->fail_by, r->fail_by, sizeof(d->fail_by));
	d->has_lat = exhaustion__latency(m->ex, r, le_exp, NLE, d->cum, &d->lat_sum_ns);
	d->lat_n = r->lat_n;
}

static void fig_add(struct dest_fig *o, const struct dest_fig *d)
{
	for (int k = 0; k < EXH_STATES; k++)
		o->state[k] += d->state[k];
	o->occupied += d->row->own;	/* the shared ports count once, in their pools */
	if (d->peak > o->peak)
		o->peak = d->peak;
	o->allocs += d->allocs;
	o->releases += d->releases;
	for (int k = 0; k < EXH_ERRS; k++)
		o->fail_by[k] += d->fail_by[k];
	for (size_t k = 0; k < NLE; k++)
		o->cum[k] += d->cum[k];
	o->lat_n += d->lat_n;
	o->lat_sum_ns += d->lat_sum_ns;
	o->has_lat |= d->has_lat;
}

static double row_frac(const struct exhaustion_row *r)
{
	return r->capacity ? (double)r->occupancy / r->capacity : 0;
}

/* Fullest first, then the most failures: the ones a person looks for. */
static int dest_cmp(const void *a, const void *b)
{
	const struct exhaustion_row *x = *(const struct exhaustion_row *const *)a,
				    *y = *(const struct exhaustion_row *const *)b;

	if (row_frac(x) != row_frac(y))
		return row_frac(x) > row_frac(y) ? -1 : 1;
	if (x->failures != y->failures)
		return x->failures > y->failures ? -1 : 1;
	if (x->occupancy != y->occupancy)
		return x->occupancy > y->occupancy ? -1 : 1;
	return x->allocs > y->allocs ? -1 : x->allocs < y->allocs;
}

/* The destination families that are one number a series, in the order
 * they are written. */
static double fig_occupied(const struct dest_fig *d) { return d->occupied; }
static double fig_peak(const struct dest_fig *d) { return d->peak; }
static double fig_full_in(const struct dest_fig *d) { return d->full_in; }
static double fig_allocs(const struct dest_fig *d) { return d->allocs; }
static double fig_releases(const struct dest_fig *d) { return d->releases; }

static const struct dest_scalar {
	const char *name, *type, *help;
	double (*get)(const struct dest_fig *d);
	bool rows_only;		/* no series for "other", the destinations past the cap */
} dest_scalars[] = {
	{ "porttrace_destination_ports_occupied", "gauge",
	  "Ports of the ephemeral range unavailable to the destination: its own plus those held for all (bind, listen, UDP). Without destination labels: the pool's shared ports.",
	  fig_occupied, false },
	{ "porttrace_destination_ports_peak", "gauge",
	  "Highest occupancy the destination reached since porttrace started.",
	  fig_peak, false },
	{ "porttrace_destination_full_seconds", "gauge",
	  "Seconds until the destination has no free port at the net allocation rate of the last 10 s; +Inf when not filling, 0 when full.",
	  fig_full_in, true },
	{ "porttrace_port_allocations_total", "counter",
	  "Ephemeral ports taken for the destination (or, without destination labels, for all).",
	  fig_allocs, false },
	{ "porttrace_port_releases_total", "counter",
	  "Ephemeral ports given back by the destination (or, without destination labels, by all).",
	  fig_releases, false },
};

static void write_dests(FILE *f, struct dest_fig *v, size_t n)
{
	family(f, "porttrace_destination_ports", "gauge",
	       "Ephemeral ports a destination holds of its own, by TCP state (connect() ports, unique per 4-tuple).");
	for (size_t i = 0; i < n; i++) {
		if (v[i].l.any)
			continue;
		for (int k = 0; k < EXH_STATES; k++) {
			put_dest(f, "porttrace_destination_ports", v[i].row ? &v[i].l : NULL);
			label(f, "state", state_label[k], 16, false);
			fputc('}', f);
			value(f, v[i].state[k]);
		}
	}
	for (size_t j = 0; j < sizeof(dest_scalars) / sizeof(dest_scalars[0]); j++) {
		const struct dest_scalar *d = &dest_scalars[j];

		family(f, d->name, d->type, d->help);
		for (size_t i = 0; i < n; i++) {
			if (d->rows_only && !v[i].row)
				continue;
			put_dest(f, d->name, v[i].row ? &v[i].l : NULL);
			fputc('}', f);
			value(f, d->get(&v[i]));
		}
	}
	family(f, "porttrace_port_allocation_failures_total", "counter",
	       "Port allocations the kernel refused, by errno: connect() EADDRNOTAVAIL per destination, bind(0) EADDRINUSE and UDP EAGAIN without destination labels.");
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < EXH_ERRS; k++) {
			if (!v[i].fail_by[k])
				continue;
			put_dest(f, "porttrace_port_allocation_failures_total", v[i].row ? &v[i].l : NULL);
			label(f, "errno", err_label[k], 16, false);
			fputc('}', f);
			value(f, v[i].fail_by[k]);
		}
	}
	family(f, "porttrace_connect_latency_seconds", "histogram",
	       "connect() latency, from the connect hook to the syscall's return; failures included.");
	for (size_t i = 0; i < n; i++) {
		char le[32];

		if (!v[i].has_lat)
			continue;
		for (size_t k = 0; k < NLE; k++) {
			put_dest(f, "porttrace_connect_latency_seconds_bucket", v[i].row ? &v[i].l : NULL);
			/* Exactly the values below 2^k ns: at most 2^k - 1. */
			snprintf(le, sizeof(le), "%.10g", ((1ULL << le_exp[k]) - 1) / NS_PER_S);
			label(f, "le", le, sizeof(le), false);
			fputc('}', f);
			value(f, v[i].cum[k]);
		}
		put_dest(f, "porttrace_connect_latency_seconds_bucket", v[i].row ? &v[i].l : NULL);
		label(f, "le", "+Inf", 8, false);
		fputc('}', f);
		value(f, v[i].lat_n);
		put_dest(f, "porttrace_connect_latency_seconds_sum", v[i].row ? &v[i].l : NULL);
		fputc('}', f);
		value(f, v[i].lat_sum_ns / NS_PER_S);
		put_dest(f, "porttrace_connect_latency_seconds_count", v[i].row ? &v[i].l : NULL);
		fputc('}', f);
		value(f, v[i].lat_n);
	}
}

static void write_pools(struct metrics *m, FILE *f, const struct exhaustion_row *rows, size_t n)
{
	family(f, "porttrace_ephemeral_ports_capacity", "gauge",
	       "Ports of the namespace's ephemeral range (net.ipv4.ip_local_port_range) minus the reserved ones.");
	for (size_t i = 0; i < n; i++) {
		if (!rows[i].any)
			continue;
		fprintf(f, "porttrace_ephemeral_ports_capacity{netns=\"%u\",proto=\"%s\"}", rows[i].netns,
			names__proto(rows[i].proto));
		value(f, rows[i].capacity);
	}
	family(f, "porttrace_ephemeral_ports_reserved", "gauge",
	       "Ports of the ephemeral range in net.ipv4.ip_local_reserved_ports.");
	for (size_t i = 0; i < n; i++) {
		if (!rows[i].any)
			continue;
		fprintf(f, "porttrace_ephemeral_ports_reserved{netns=\"%u\",proto=\"%s\"}", rows[i].netns,
			names__proto(rows[i].proto));
		value(f, rows[i].reserved);
	}
	family(f, "porttrace_netns_info", "gauge",
	       "The \"ip netns\" name of a network namespace seen, by inode; 1.");
	for (size_t i = 0; i < n; i++) {
		const char *name;
		bool dup = false;

		if (!rows[i].any)
			continue;
		for (size_t j = 0; j < i && !dup; j++)
			dup = rows[j].any && rows[j].netns == rows[i].netns;
		if (dup || !(name = netns__name(m->ns, rows[i].netns)))
			continue;
		fprintf(f, "porttrace_netns_info{netns=\"%u\",", rows[i].netns);
		label(f, "name", name, 256, true);
		fputc('}', f);
		value(f, 1);
	}
}

/* Owners whose labels are the same (two cgroups of one unit) are one
 * series; the most failing first, the rest in "other". */
struct owner_fig {
	char comm[PT_TASK_COMM_LEN];
	char unit[128], container[65], pod[40];
	unsigned long long n[EXH_ERRS], total;
};

static int owner_cmp(const void *a, const void *b)
{
	const struct owner_fig *x = a, *y = b;

	return x->total > y->total ? -1 : x->total < y->total;
}

static void write_owners(struct metrics *m, FILE *f)
{
	struct owner_fig *v = calloc(m->nowners + 1, sizeof(*v)), other = {};
	size_t n = 0;

	family(f, "porttrace_owner_allocation_failures_total", "counter",
	       "Port allocations refused, by errno, per process name and its systemd unit or container.");
	if (!v)
		return;
	for (size_t i = 0; i < m->nowners; i++) {
		const struct cgroup_ident *id = cgroups__lookup(m->cg, m->owners[i].cgroup);
		struct owner_fig o = {};
		size_t j;

		memcpy(o.comm, m->owners[i].comm, sizeof(o.comm));
		if (id) {
			snprintf(o.unit, sizeof(o.unit), "%s", id->unit);
			snprintf(o.container, sizeof(o.container), "%s", id->container);
			snprintf(o.pod, sizeof(o.pod), "%s", id->pod);
		}
		for (j = 0; j < n; j++)
			if (!strcmp(v[j].comm, o.comm) && !strcmp(v[j].unit, o.unit) &&
			    !strcmp(v[j].container, o.container) && !strcmp(v[j].pod, o.pod))
				break;
		if (j == n)
			v[n++] = o;
		for (int k = 0; k < EXH_ERRS; k++) {
			v[j].n[k] += m->owners[i].n[k];
			v[j].total += m->owners[i].n[k];
		}
	}
	qsort(v, n, sizeof(*v), owner_cmp);
	for (int k = 0; k < EXH_ERRS; k++)
		other.n[k] = m->other_owner[k];
	for (size_t i = m->max_dests; i < n; i++)
		for (int k = 0; k < EXH_ERRS; k++)
			other.n[k] += v[i].n[k];
	if (n > m->max_dests)
		n = m->max_dests;
	for (size_t i = 0; i <= n; i++) {
		const struct owner_fig *o = i < n ? &v[i] : &other;

		for (int k = 0; k < EXH_ERRS; k++) {
			if (!o->n[k])
				continue;
			fputs("porttrace_owner_allocation_failures_total{", f);
			label(f, "comm", i < n ? o->comm : "other", PT_TASK_COMM_LEN, true);
			label(f, "unit", o->unit, sizeof(o->unit), false);
			label(f, "container", o->container, sizeof(o->container), false);
			label(f, "pod", o->pod, sizeof(o->pod), false);
			label(f, "errno", err_label[k], 16, false);
			fputc('}', f);
			value(f, o->n[k]);
		}
	}
	free(v);
}

static void write_listeners(struct metrics *m, FILE *f)
{
	family(f, "porttrace_listening_sockets", "gauge",
	       "Listening TCP sockets by scope (wildcard, loopback, address) and whether their port is inside the ephemeral range.");
	for (size_t i = 0; i < m->nlc; i++) {
		if (!m->lc[i].n)
			continue;
		fprintf(f, "porttrace_listening_sockets{netns=\"%u\",proto=\"%s\",scope=\"%s\",ephemeral=\"%s\"}",
			m->lc[i].netns, names__proto(m->lc[i].proto), m->lc[i].scope,
			m->lc[i].in_range ? "true" : "false");
		value(f, m->lc[i].n);
	}
}

int metrics__build(struct metrics *m, __u64 now_ns, __u64 mono_ns, const struct metrics_health *h,
		   char **text, size_t *len)
{
	struct exhaustion_status st;
	struct exhaustion_row *rows;
	const struct exhaustion_row **dests = NULL;
	struct dest_fig *figs = NULL, other;
	size_t nrows, nd = 0, nf = 0;
	FILE *f = open_memstream(text, len);

	if (!f)
		return -ENOMEM;
	rows = exhaustion__rows(m->ex, now_ns, &nrows);
	if (nrows) {
		dests = calloc(nrows, sizeof(*dests));
		figs = calloc(nrows + 1, sizeof(*figs));
	}
	if (nrows && (!rows || !dests || !figs))
		goto fail;
	for (size_t i = 0; i < nrows; i++)
		if (!rows[i].any)
			dests[nd++] = &rows[i];
	qsort(dests, nd, sizeof(*dests), dest_cmp);
	/* The pools first (never capped: one per namespace and protocol). */
	for (size_t i = 0; i < nrows; i++)
		if (rows[i].any)
			fig_of(m, &rows[i], &figs[nf++]);
	memset(&other, 0, sizeof(other));
	for (size_t i = 0; i < nd; i++) {
		struct dest_fig d;

		fig_of(m, dests[i], &d);
		if (i < m->max_dests)
			figs[nf++] = d;
		else
			fig_add(&other, &d);
	}
	if (nd > m->max_dests)
		figs[nf++] = other;

	write_pools(m, f, rows, nrows);
	write_dests(f, figs, nf);
	write_owners(m, f);
	write_listeners(m, f);

	exhaustion__status(m->ex, &st);
	family(f, "porttrace_events_total", "counter", "Events porttrace handled, by type.");
	for (unsigned int k = 0; k < PT_PORT_KIND_MAX + 2; k++) {
		const char *t = k == 0 ? "state" : k == PT_PORT_KIND_MAX + 1 ? "lost" : names__port_kind(k);

		if (k == PT_PORT_KIND_MAX)
			continue;
		fputs("porttrace_events_total{", f);
		label(f, "type", t, 32, true);
		fputc('}', f);
		value(f, m->by_type[k]);
	}
	family(f, "porttrace_kernel_records_lost_total", "counter",
	       "Records the kernel could not queue (ring buffer full) or make, and hook runs it skipped.");
	fputs("porttrace_kernel_records_lost_total", f);
	value(f, h->lost_kernel);
	family(f, "porttrace_events_write_lost_total", "counter",
	       "Events dropped because writing the log failed (a full disk).");
	fputs("porttrace_events_write_lost_total", f);
	value(f, h->lost_write);
	family(f, "porttrace_bad_records_total", "counter", "Malformed kernel records skipped.");
	fputs("porttrace_bad_records_total", f);
	value(f, h->bad_records);
	if (h->ring_bytes) {
		family(f, "porttrace_ring_buffer_size_bytes", "gauge",
		       "Size of the BPF ring buffer the kernel queues records in (--ring-size).");
		fputs("porttrace_ring_buffer_size_bytes", f);
		value(f, h->ring_bytes);
		family(f, "porttrace_ring_buffer_fill_ratio", "gauge",
		       "The most of the ring buffer that was queued when porttrace's reader came back for it, since the previous exposition; at 1 records are lost.");
		fputs("porttrace_ring_buffer_fill_ratio", f);
		value(f, (double)h->ring_max_queued / h->ring_bytes);
	}
	family(f, "porttrace_metrics_build_seconds", "gauge",
	       "How long building the previous exposition took, on the thread that reads the ring buffer.");
	fputs("porttrace_metrics_build_seconds", f);
	value(f, h->last_build_s);
	family(f, "porttrace_socket_check_age_seconds", "gauge",
	       "Seconds since the counts were last checked against the kernel's socket table; +Inf before the first check.");
	fputs("porttrace_socket_check_age_seconds", f);
	value(f, st.checked && mono_ns >= st.check_ns ? (mono_ns - st.check_ns) / NS_PER_S : INFINITY);
	family(f, "porttrace_socket_check_disagreements", "gauge",
	       "Ports the last check found only in the kernel (missing), only in the events (extra), or different at two checks running (persistent).");
	fputs("porttrace_socket_check_disagreements{kind=\"missing\"}", f);
	value(f, st.check_missing);
	fputs("porttrace_socket_check_disagreements{kind=\"extra\"}", f);
	value(f, st.check_extra);
	fputs("porttrace_socket_check_disagreements{kind=\"persistent\"}", f);
	value(f, st.check_persistent);
	family(f, "porttrace_bpf_program_run_seconds_total", "counter",
	       "Time the kernel spent in each porttrace BPF program; only while kernel.bpf_stats_enabled is 1.");
	for (size_t i = 0; i < h->nprogs; i++) {
		fputs("porttrace_bpf_program_run_seconds_total{", f);
		label(f, "program", h->progs[i].name, 64, true);
		fputc('}', f);
		value(f, h->progs[i].run_ns / NS_PER_S);
	}
	family(f, "porttrace_bpf_program_runs_total", "counter",
	       "Runs of each porttrace BPF program; only while kernel.bpf_stats_enabled is 1.");
	for (size_t i = 0; i < h->nprogs; i++) {
		fputs("porttrace_bpf_program_runs_total{", f);
		label(f, "program", h->progs[i].name, 64, true);
		fputc('}', f);
		value(f, h->progs[i].runs);
	}
	free(rows);
	free(dests);
	free(figs);
	if (fclose(f)) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	return 0;
fail:
	free(rows);
	free(dests);
	free(figs);
	fclose(f);
	free(*text);
	*text = NULL;
	return -ENOMEM;
}
