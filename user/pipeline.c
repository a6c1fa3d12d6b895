// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Every entry point (live run, top, the offline commands, ptreplay, ptfloor)
 * builds this one chain, so a consumer added here is fed by all of them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "array.h"
#include "decoder.h"
#include "exhaustion.h"
#include "log.h"
#include "output.h"
#include "pipeline.h"
#include "timeline.h"
#include "tracer.h"

#define SNAPSHOT_MAX (60 * 1024)	/* the log reader takes lines up to 64 KiB */

struct consumer {
	pt_event_fn fn;
	void *ctx;
};

struct pipeline {
	struct pipeline_opts o;
	struct decoder *dec;
	struct consumer *cons;
	size_t ncons, cap_cons;
	unsigned long long lost_seen;
	bool check_warned;
	char *snap;			/* SNAPSHOT_MAX bytes, with snapshots */
};

int pipeline__add(struct pipeline *p, pt_event_fn fn, void *ctx)
{
	struct consumer *v = array__grow(p->cons, &p->cap_cons, p->ncons + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	p->cons = v;
	v[p->ncons++] = (struct consumer){fn, ctx};
	return 0;
}

struct pipeline *pipeline__new(const struct pipeline_opts *o)
{
	struct pipeline *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->o = *o;
	p->dec = decoder__new();
	if (!p->dec || (o->out && pipeline__add(p, output__event, o->out)) ||
	    (o->tl && pipeline__add(p, timeline__event, o->tl)) ||
	    (o->ex && pipeline__add(p, exhaustion__event, o->ex)) ||
	    (o->ex && o->out && o->snapshots && !(p->snap = malloc(SNAPSHOT_MAX)))) {
		pipeline__free(p);
		return NULL;
	}
	return p;
}

void pipeline__free(struct pipeline *p)
{
	if (!p)
		return;
	decoder__free(p->dec);
	free(p->cons);
	free(p->snap);
	free(p);
}

struct decoder *pipeline__decoder(struct pipeline *p)
{
	return p->dec;
}

int pipeline__event(void *ctx, const struct pt_event *ev)
{
	struct pipeline *p = ctx;

	for (size_t i = 0; i < p->ncons; i++) {
		int err = p->cons[i].fn(p->cons[i].ctx, ev);

		if (err)
			return err;
	}
	return 0;
}

int pipeline__record(struct pipeline *p, const void *data, size_t len)
{
	return decoder__record(p->dec, data, len, pipeline__event, p);
}

/* The sockets held before tracing began pass the filters the kernel
 * applies to events. */
static bool existing_wanted(const struct tracer_opts *t, const struct pt_event *ev)
{
	bool pid_ok = !t->n_pids, port_ok = !t->n_ports;

	for (int i = 0; i < t->n_pids && !pid_ok; i++)
		pid_ok = (ev->flags & PT_F_OWNER_KNOWN) && ev->owner.pid == t->pids[i];
	for (int i = 0; i < t->n_ports && !port_ok; i++)
		port_ok = ev->sk.lport == t->ports[i] || ev->sk.rport == t->ports[i];
	return !t->failures && pid_ok && port_ok && (!t->family || t->family == ev->sk.family) &&
	       (!t->proto || t->proto == ev->sk.proto) && (!t->ephemeral || pt_event_in_range(ev));
}

int pipeline__existing(void *ctx, const struct pt_event *ev)
{
	struct pipeline *p = ctx;

	if (p->o.filter && !existing_wanted(p->o.filter, ev))
		return 0;
	decoder__remember(p->dec, ev);
	return pipeline__event(p, ev);
}

/* A check found a time-wait socket gone early: every consumer hears it, and
 * the decoder drops the expiry it had queued. */
static int on_tw_gone(void *ctx, const struct pt_event *ev)
{
	struct pipeline *p = ctx;

	decoder__tw_gone(p->dec, ev->sk.cookie);
	return pipeline__event(p, ev);
}

/* With exhaustion: when due, a check against the socket table and a
 * snapshot record; final: the end-of-run record. */
static void exhaustion_tick(struct pipeline *p, __u64 now, bool final)
{
	int n;

	if (!p->o.ex)
		return;
	n = final ? 0 : exhaustion__check(p->o.ex, now, on_tw_gone, p);
	if (n < 0 && n != -EOPNOTSUPP && !p->check_warned) {
		p_warn("checking counts against the socket table: %s", strerror(-n));
		p->check_warned = true;
	}
	/* Text and CSV streams carry no records: build none. */
	if (!p->snap)
		return;
	n = final ? exhaustion__json(p->o.ex, now, true, p->snap, SNAPSHOT_MAX, NULL)
		  : exhaustion__snapshot(p->o.ex, now, p->snap, SNAPSHOT_MAX);
	if (n > 0)
		output__raw(p->o.out, p->snap, n);
}

int pipeline__tick(struct pipeline *p, __u64 now_ns)
{
	int err = decoder__tick(p->dec, now_ns, pipeline__event, p);

	if (!err)
		exhaustion_tick(p, now_ns, false);
	return err;
}

/* The kernel counts what it lost; a change becomes an event, in order with
 * the records around it. */
int pipeline__lost(struct pipeline *p, unsigned long long total, __u64 now_ns)
{
	struct pt_event ev = {.type = PT_EV_LOST, .ts_ns = now_ns};

	if (total == p->lost_seen)
		return 0;
	ev.lost = total - p->lost_seen;
	ev.lost_total = total;
	p->lost_seen = total;
	return pipeline__event(p, &ev);
}

int pipeline__end(struct pipeline *p, __u64 now_ns)
{
	int err = decoder__end(p->dec, pipeline__event, p);

	if (!err)
		exhaustion_tick(p, now_ns, true);
	return err;
}

void pipeline__stats(const struct pipeline *p, struct run_stats *st)
{
	st->lost = p->lost_seen;
	st->bad = decoder__bad_records(p->dec);
	st->aged = decoder__aged(p->dec);
}
