// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The report's aggregation: time buckets sampled from exhaustion, the
 * destinations worth drawing, the listeners. Drawing is report_html.c's.
 */
#define _GNU_SOURCE
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "log.h"
#include "logreader.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "socktab.h"

struct report {
	struct report_opts o;
	struct exhaustion *ex;		/* not owned */
	struct timeline *tl;		/* not owned */
	bool started;
	__u64 t0, realtime0, end;
	char host[256];
	__u64 width;
	unsigned int nb;		/* closed buckets; the open one is nb */
	struct report_series *series[REPORT_TRACK];
	unsigned int nseries;
	unsigned long long dropped;
	struct report_series **order;	/* report__view(): the fullest first */
	struct report_listener *lis;
	unsigned int nlis;
	unsigned long long lis_dropped;
	struct socktab *lis_idx;	/* cookie -> index + 1 in lis */
	char *path, *tmp;		/* report__prepare() */
	int fd;
};

struct report *report__new(const struct report_opts *o, struct exhaustion *ex, struct timeline *tl)
{
	struct report *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->o = *o;
	if (!r->o.dests)
		r->o.dests = 4;
	if (!r->o.procs)
		r->o.procs = 6;
	if (!r->o.lanes)
		r->o.lanes = 64;
	r->ex = ex;
	r->tl = tl;
	r->width = REPORT_BUCKET0_NS;
	r->fd = -1;
	r->lis = calloc(REPORT_LISTENERS, sizeof(*r->lis));
	r->lis_idx = socktab__new(REPORT_LISTENERS, sizeof(unsigned int));
	if (!r->lis || !r->lis_idx) {
		report__free(r);
		return NULL;
	}
	return r;
}

void report__free(struct report *r)
{
	if (!r)
		return;
	for (unsigned int i = 0; i < r->nseries; i++) {
		free(r->series[i]->b);
		free(r->series[i]);
	}
	if (r->tmp) {
		if (r->fd >= 0)
			close(r->fd);
		unlink(r->tmp);
	}
	free(r->order);
	free(r->lis);
	socktab__free(r->lis_idx);
	free(r->path);
	free(r->tmp);
	free(r);
}

void report__attach(struct report *r, struct exhaustion *ex, struct timeline *tl)
{
	r->ex = ex;
	r->tl = tl;
}

void report__set_start(struct report *r, __u64 start_mono_ns, __u64 start_realtime_ns)
{
	if (r->started || !start_mono_ns)
		return;
	r->t0 = start_mono_ns;
	r->realtime0 = start_realtime_ns;
	r->started = true;
}

void report__set_host(struct report *r, const char *host)
{
	snprintf(r->host, sizeof(r->host), "%s", host ? host : "");
}

struct timeline *report__timeline(struct report *r)
{
	return r->tl;
}

/* ---- time buckets ---- */

/* a then b, its later neighbour: the end state is b's. */
static void bucket_merge(struct report_bucket *a, const struct report_bucket *b)
{
	unsigned long long n = a->lat_n + b->lat_n;
	unsigned int max = a->max > b->max ? a->max : b->max;

	/* Percentiles do not add up: p99 of the two together is at most the
	 * higher p99, and p50 is taken as the calls' weighted mean. */
	if (n)
		a->lat_p50_ns = (a->lat_p50_ns * (double)a->lat_n + b->lat_p50_ns * (double)b->lat_n) / n;
	a->lat_p99_ns = a->lat_p99_ns > b->lat_p99_ns ? a->lat_p99_ns : b->lat_p99_ns;
	a->lat_n = n;
	a->failures += b->failures;
	memcpy(a->state, b->state, sizeof(a->state));
	a->shared = b->shared;
	a->capacity = b->capacity;
	a->occupancy = b->occupancy;
	a->max = max;
}

/* Twice the width, half the buckets. */
static void halve(struct report *r)
{
	unsigned int nb = r->nb / 2;

	for (unsigned int k = 0; k < r->nseries; k++) {
		struct report_series *s = r->series[k];

		for (unsigned int i = 0; i < nb; i++) {
			struct report_bucket m = s->b[2 * i];

			bucket_merge(&m, &s->b[2 * i + 1]);
			s->b[i] = m;
		}
		/* An odd one out shares its new bucket with the open one. */
		if (r->nb % 2) {
			struct report_bucket m = s->b[r->nb - 1];

			if (s->has_carry)
				bucket_merge(&m, &s->carry);
			s->carry = m;
			s->has_carry = true;
		}
		memset(s->b + nb, 0, (REPORT_BUCKETS - nb) * sizeof(*s->b));
		s->since /= 2;
	}
	r->nb = nb;
	r->width *= 2;
}

static double series_score(const struct exhaustion_sample *s)
{
	return s->capacity ? (double)s->peak / s->capacity : s->peak / 65536.0;
}

/* Fuller first: peak against capacity, then failures, then calls. */
static int sample_cmp(const struct exhaustion_sample *a, const struct exhaustion_sample *b)
{
	double x = series_score(a), y = series_score(b);

	if (x != y)
		return x > y ? -1 : 1;
	if (a->failures != b->failures)
		return a->failures > b->failures ? -1 : 1;
	if (a->lat_n != b->lat_n)
		return a->lat_n > b->lat_n ? -1 : 1;
	return 0;
}

static bool worth_drawing(const struct exhaustion_sample *s)
{
	return s->peak || s->failures || s->lat_n;
}

static struct report_series *series_for(struct report *r, const struct exhaustion_sample *smp)
{
	struct report_series *s = NULL;
	unsigned int k, least = 0;

	for (k = 0; k < r->nseries; k++) {
		if (r->series[k]->last.key == smp->key)
			return r->series[k];
		if (sample_cmp(&r->series[k]->last, &r->series[least]->last) > 0)
			least = k;
	}
	if (!worth_drawing(smp))
		return NULL;
	if (r->nseries < REPORT_TRACK) {
		s = calloc(1, sizeof(*s));
		if (s && !(s->b = calloc(REPORT_BUCKETS, sizeof(*s->b)))) {
			free(s);
			s = NULL;
		}
		if (!s)
			return NULL;
		r->series[r->nseries++] = s;
	} else {
		/* Full: the least full gives way to a fuller one. */
		if (sample_cmp(smp, &r->series[least]->last) >= 0)
			return NULL;
		s = r->series[least];
		memset(s->b, 0, REPORT_BUCKETS * sizeof(*s->b));
		r->dropped++;
	}
	memset(&s->last, 0, sizeof(s->last));
	memset(s->lat_prev, 0, sizeof(s->lat_prev));
	s->has_carry = false;
	s->since = r->nb;
	return s;
}

struct sampling {
	struct report *r;
	unsigned int upto;	/* buckets nb .. upto - 1 end with this sample */
};

static int sample_one(void *ctx, const struct exhaustion_sample *smp)
{
	struct sampling *sp = ctx;
	struct report *r = sp->r;
	struct report_series *s = series_for(r, smp);
	struct report_bucket b = {};
	__u64 start = r->t0 + (__u64)r->nb * r->width;
	unsigned int before;

	if (!s)
		return 0;
	before = s->last.key ? s->last.occupancy : 0;
	memcpy(b.state, smp->state, sizeof(b.state));
	b.shared = smp->shared;
	b.capacity = smp->capacity;
	b.occupancy = smp->occupancy;
	b.max = before > smp->occupancy ? before : smp->occupancy;
	if (smp->peak_ns >= start && smp->peak > b.max)
		b.max = smp->peak;
	b.failures = smp->failures - (s->last.key ? s->last.failures : 0);
	if (smp->lat) {
		b.lat_p50_ns = exhaustion__lat_pct(smp->lat, s->lat_prev, 50, &b.lat_n);
		b.lat_p99_ns = exhaustion__lat_pct(smp->lat, s->lat_prev, 99, NULL);
		memcpy(s->lat_prev, smp->lat, sizeof(s->lat_prev));
	}
	if (s->has_carry) {
		struct report_bucket m = s->carry;

		bucket_merge(&m, &b);
		b = m;
		s->has_carry = false;
	}
	s->b[r->nb] = b;
	/* Nothing happened in the buckets after it: the same state. */
	for (unsigned int i = r->nb + 1; i < sp->upto; i++) {
		struct report_bucket *e = &s->b[i];

		*e = b;
		e->max = b.occupancy;
		e->failures = e->lat_n = 0;
		e->lat_p50_ns = e->lat_p99_ns = 0;
	}
	s->last = *smp;
	s->last.lat = NULL;	/* exhaustion's, valid only now */
	return 0;
}

/* Close every bucket before bucket idx with one sample: nothing changed
 * since the last event, which was before the first of them ended. */
static void close_before(struct report *r, unsigned int idx)
{
	struct sampling sp = {.r = r, .upto = idx};

	if (idx <= r->nb)
		return;
	/* A destination, once it has a row, keeps it: every followed one
	 * is sampled. */
	exhaustion__each(r->ex, sample_one, &sp);
	r->nb = idx;
}

static unsigned int bucket_index(const struct report *r, __u64 ts)
{
	__u64 i = ts > r->t0 ? (ts - r->t0) / r->width : 0;

	return i > UINT_MAX ? UINT_MAX : i;
}

/* The bucket of ts must exist: halve until it does. */
static void advance(struct report *r, __u64 ts)
{
	unsigned int idx = bucket_index(r, ts);

	if (idx <= r->nb)
		return;
	while (idx >= REPORT_BUCKETS) {
		halve(r);
		idx = bucket_index(r, ts);
	}
	close_before(r, idx);
}

/* ---- listeners ---- */

static bool listens(const struct pt_event *ev)
{
	if (ev->type != PT_EV_PORT || !pt_event_port_known(ev))
		return false;
	if (ev->kind == PT_PORT_LISTEN)
		return true;
	return ev->kind == PT_PORT_EXISTING &&
	       (ev->sk.proto == IPPROTO_TCP ? ev->newstate == TCP_LISTEN : !ev->sk.rport);
}

static void listener_seen(struct report *r, const struct pt_event *ev)
{
	unsigned int *slot = socktab__get(r->lis_idx, ev->sk.cookie), i;
	struct report_listener *l;

	if (slot) {
		i = *slot - 1;
	} else if (r->nlis < REPORT_LISTENERS) {
		i = r->nlis++;
	} else {
		/* Full: the oldest that stopped listening makes room. */
		for (i = 0; i < r->nlis && !r->lis[i].until_ns; i++)
			;
		if (i == r->nlis) {
			r->lis_dropped++;
			return;
		}
		socktab__take(r->lis_idx, r->lis[i].cookie, NULL);
		r->lis_dropped++;
	}
	l = &r->lis[i];
	memset(l, 0, sizeof(*l));
	l->cookie = ev->sk.cookie;
	l->owner = ev->owner;
	l->owner_known = ev->flags & PT_F_OWNER_KNOWN;
	l->sk = ev->sk;
	l->reserved = ev->flags & PT_F_RESERVED;
	l->in_range = pt_event_in_range(ev);
	l->existing = ev->kind == PT_PORT_EXISTING;
	l->from_ns = ev->ts_ns;
	i++;
	if (ev->sk.cookie)
		socktab__put(r->lis_idx, ev->sk.cookie, &i);
}

static void listener_gone(struct report *r, const struct pt_event *ev)
{
	unsigned int *slot = socktab__get(r->lis_idx, ev->sk.cookie);

	if (!slot)
		return;
	r->lis[*slot - 1].until_ns = ev->ts_ns;
	socktab__take(r->lis_idx, ev->sk.cookie, NULL);
}

/* ---- the consumer ---- */

int report__event(void *ctx, const struct pt_event *ev)
{
	struct report *r = ctx;

	if (ev->type == PT_EV_LOST)
		return 0;
	if (!r->started) {
		r->t0 = ev->ts_ns;
		r->started = true;
	}
	if (ev->ts_ns > r->end)
		r->end = ev->ts_ns;
	advance(r, ev->ts_ns);
	if (listens(ev))
		listener_seen(r, ev);
	else if (ev->type == PT_EV_PORT && ev->kind == PT_PORT_RELEASE)
		listener_gone(r, ev);
	return 0;
}

static bool row_is(const struct exhaustion_row *row, const struct exhaustion_sample *s)
{
	return row->netns == s->netns && row->proto == s->proto && row->any == s->any &&
	       (s->any || (row->family == s->family && row->rport == s->rport &&
			   !memcmp(row->laddr, s->laddr, 16) && !memcmp(row->raddr, s->raddr, 16)));
}

void report__finish(struct report *r)
{
	struct exhaustion_row *rows;
	size_t n = 0;

	if (!r->started)
		return;
	/* The last bucket ends with the last event. */
	advance(r, r->end + r->width);
	/* Where a destination is filling up: exhaustion's forecast. */
	rows = exhaustion__rows(r->ex, 0, &n);
	for (unsigned int k = 0; k < r->nseries; k++) {
		r->series[k]->full_in_s = -1;
		for (size_t i = 0; rows && i < n; i++)
			if (row_is(&rows[i], &r->series[k]->last))
				r->series[k]->full_in_s = rows[i].full_in_s;
	}
	free(rows);
}

/* ---- the view ---- */

static int series_cmp(const void *a, const void *b)
{
	const struct report_series *x = *(struct report_series *const *)a;
	const struct report_series *y = *(struct report_series *const *)b;

	return sample_cmp(&x->last, &y->last);
}

/* The ones to look at first: reachable from outside and where a client's
 * autobind can take the port, then either, then the rest; by port. */
static int listener_rank(const struct report_listener *l)
{
	bool wild = !strcmp(output__listen_scope(l->sk.family, l->sk.laddr), "wildcard");

	return (l->until_ns ? 4 : 0) + (wild && l->in_range ? 0 : wild ? 1 : l->in_range ? 2 : 3);
}

static int listener_cmp(const void *a, const void *b)
{
	const struct report_listener *x = a, *y = b;
	int rx = listener_rank(x), ry = listener_rank(y);

	if (rx != ry)
		return rx - ry;
	if (x->sk.lport != y->sk.lport)
		return x->sk.lport - y->sk.lport;
	return x->sk.proto - y->sk.proto;
}

void report__view(struct report *r, struct report_view *v)
{
	unsigned int n = 0;

	memset(v, 0, sizeof(*v));
	v->o = &r->o;
	v->t0_ns = r->t0;
	v->end_ns = r->end > r->t0 ? r->end : r->t0;
	v->realtime0_ns = r->realtime0;
	v->host = r->host[0] ? r->host : NULL;
	v->width_ns = r->width;
	v->nb = r->nb;
	free(r->order);
	r->order = malloc((r->nseries ? r->nseries : 1) * sizeof(*r->order));
	for (unsigned int k = 0; r->order && k < r->nseries; k++)
		if (worth_drawing(&r->series[k]->last))
			r->order[n++] = r->series[k];
	if (r->order)
		qsort(r->order, n, sizeof(*r->order), series_cmp);
	v->dests = r->order;
	v->dests_seen = n;
	v->ndests = n < r->o.dests ? n : r->o.dests;
	v->dests_dropped = r->dropped;
	/* The index points into lis by position: sorting ends ingestion. */
	qsort(r->lis, r->nlis, sizeof(*r->lis), listener_cmp);
	socktab__free(r->lis_idx);
	r->lis_idx = socktab__new(REPORT_LISTENERS, sizeof(unsigned int));
	for (unsigned int i = 0; r->lis_idx && i < r->nlis; i++) {
		unsigned int one = i + 1;

		if (!r->lis[i].until_ns && r->lis[i].cookie)
			socktab__put(r->lis_idx, r->lis[i].cookie, &one);
	}
	v->listeners = r->lis;
	v->nlisteners = r->nlis;
	v->listeners_dropped = r->lis_dropped;
	if (r->ex)
		exhaustion__status(r->ex, &v->st);
}

unsigned int report__bucket_of(const struct report_view *v, __u64 ts)
{
	__u64 i = ts > v->t0_ns ? (ts - v->t0_ns) / v->width_ns : 0;

	return i >= v->nb ? (v->nb ? v->nb - 1 : 0) : i;
}

/* ---- the file ---- */

int report__prepare(struct report *r, const char *path)
{
	char *dir = strdup(path), *base = strdup(path);
	struct stat st;
	int err = 0;

	if (!dir || !base) {
		err = -ENOMEM;
		goto out;
	}
	if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
		err = -EISDIR;
		goto out;
	}
	free(r->path);
	free(r->tmp);
	r->tmp = NULL;
	r->path = strdup(path);
	if (!r->path || asprintf(&r->tmp, "%s/.%s.XXXXXX", dirname(dir), basename(base)) < 0) {
		r->tmp = NULL;
		err = -ENOMEM;
		goto out;
	}
	r->fd = mkostemp(r->tmp, O_CLOEXEC);
	if (r->fd < 0) {
		err = -errno;
		free(r->tmp);
		r->tmp = NULL;
		goto out;
	}
	/* As the logs: what a report names is for root and its group. */
	fchmod(r->fd, 0640);
out:
	if (err)
		p_err("cannot write report %s: %s", path, strerror(-err));
	free(dir);
	free(base);
	return err;
}

int report__write(struct report *r, const char *path)
{
	struct report_view v;
	FILE *f;
	int err;

	if ((!r->tmp || strcmp(r->path, path)) && (err = report__prepare(r, path)))
		return err;
	report__view(r, &v);
	f = fdopen(r->fd, "w");
	if (!f) {
		err = -errno;
		goto fail;
	}
	r->fd = -1;
	err = report_html__write(f, &v, r->tl);
	if (fflush(f) || ferror(f) || fsync(fileno(f)))
		err = -(errno ? errno : EIO);
	if (fclose(f) && !err)
		err = -(errno ? errno : EIO);
	if (!err && rename(r->tmp, r->path))
		err = -errno;
	if (!err) {
		free(r->tmp);
		r->tmp = NULL;
		return 0;
	}
fail:
	p_err("cannot write report %s: %s", path, strerror(-err));
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	unlink(r->tmp);
	free(r->tmp);
	r->tmp = NULL;
	return err;
}

/* ---- porttrace report FILE... ---- */

struct rep_args {
	struct report_opts o;
	double warn_frac;
	const char *output;
	char **files;
	int nfiles;
};

static const struct argp_option rep_options[] = {
	{"output", 'o', "FILE", 0, "Write the report to FILE (required), e.g. report.html", 0},
	{"dests", 'D', "N", 0, "Destinations drawn over time, the fullest first (default 4)", 0},
	{"procs", 'P', "N", 0, "Processes drawn as swimlanes, the busiest first (default 6)", 0},
	{"lanes", 'L', "N", 0, "Ports (lanes) drawn per process (default 64)", 0},
	{"warn", 'w', "PCT", 0, "Warning threshold drawn, 1..100 (default 80)", 0},
	{"title", 't', "TEXT", 0, "Title of the page", 0},
	{},
};

static error_t rep_parse(int key, char *arg, struct argp_state *state)
{
	struct rep_args *a = state->input;
	unsigned long v;

	switch (key) {
	case 'o':
		if (!*arg)
			argp_error(state, "empty output file name");
		a->output = arg;
		break;
	case 'D':
	case 'P':
	case 'L':
		if (options__parse_ulong(arg, 1, key == 'L' ? 1024 : REPORT_TRACK * (key == 'D' ? 1 : 4), &v))
			argp_error(state, "invalid --%s '%s': expected 1..%d",
				   key == 'D' ? "dests" : key == 'P' ? "procs" : "lanes", arg,
				   key == 'L' ? 1024 : REPORT_TRACK * (key == 'D' ? 1 : 4));
		*(key == 'D' ? &a->o.dests : key == 'P' ? &a->o.procs : &a->o.lanes) = v;
		break;
	case 'w':
		options__warn(state, arg, &a->warn_frac);
		break;
	case 't':
		a->o.title = arg;
		break;
	default:
		if (key == ARGP_KEY_END && !a->output)
			argp_error(state, "no report file given (-o FILE)");
		if (!options__files(key, state, &a->files, &a->nfiles))
			return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

/* The offline chain: the same consumers as a live run with --report, in
 * the same order. */
struct offline {
	struct logreader *lr;
	struct timeline *tl;
	struct report *rep;
	struct exhaustion *ex;
};

static int offline_event(void *ctx, const struct pt_event *ev)
{
	struct offline *c = ctx;

	report__set_start(c->rep, logreader__start_mono_ns(c->lr), logreader__start_realtime_ns(c->lr));
	timeline__event(c->tl, ev);
	report__event(c->rep, ev);
	return exhaustion__event(c->ex, ev);
}

int report__main(int argc, char **argv)
{
	static const struct argp argp = {
		.options = rep_options,
		.parser = rep_parse,
		.args_doc = "FILE...",
		.doc = "A self-contained HTML report of ports over time from porttrace JSON logs\n"
		       "(-o FILE --format json), rotated and compressed pieces included: the\n"
		       "fullest destinations' occupancy by state against capacity, failures and\n"
		       "connect() latency, per-process swimlanes of port lives, and listeners.\v"
		       "Examples:\n"
		       "  porttrace report /var/log/porttrace.jsonl -o report.html\n"
		       "  porttrace report load.jsonl --dests 2 --procs 3 -o /tmp/load.html",
	};
	struct rep_args a = {.warn_frac = 0.8};
	struct timeline_opts to = {.keep = PT_TIMELINE_KEEP};
	struct offline c = {};
	int ret = 1;

	argp_err_exit_status = 2;
	argp_parse(&argp, argc, argv, 0, NULL, &a);

	{
		struct exhaustion_opts xo = {.warn_frac = a.warn_frac, .interval_s = 10};

		c.lr = logreader__new();
		c.tl = timeline__new(&to);
		c.ex = exhaustion__new(&xo);
	}
	c.rep = c.ex && c.tl ? report__new(&a.o, c.ex, c.tl) : NULL;
	if (!c.lr || !c.rep) {
		p_err("out of memory");
		goto cleanup;
	}
	/* An unusable -o is said before the logs are read. */
	if (report__prepare(c.rep, a.output))
		goto cleanup;
	if (logreader__read_all(c.lr, a.files, a.nfiles, offline_event, &c) < 0)
		goto cleanup;
	report__set_host(c.rep, logreader__host(c.lr));
	report__finish(c.rep);
	if (report__write(c.rep, a.output))
		goto cleanup;
	ret = 0;
cleanup:
	report__free(c.rep);
	exhaustion__free(c.ex);
	timeline__free(c.tl);
	logreader__free(c.lr);
	return ret;
}
