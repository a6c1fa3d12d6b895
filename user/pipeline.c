// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Every entry point (live run, top, the offline commands, ptreplay, ptfloor)
 * builds this one chain, so a consumer added here is fed by all of them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "array.h"
#include "cgroup.h"
#include "clock.h"
#include "decoder.h"
#include "exhaustion.h"
#include "log.h"
#include "output.h"
#include "pipeline.h"
#include "report.h"
#include "sockdiag.h"
#include "timeline.h"
#include "tracer.h"

#define SNAPSHOT_MAX (60 * 1024)	/* the log reader takes lines up to 64 KiB */
/* Sockets of the start-up table in flight between its reader's thread and
 * the ring's: at most this many wait, and the ring drains between batches. */
#define TABLE_QUEUE 4096
#define TABLE_BATCH 256

struct consumer {
	pt_event_fn fn;
	void *ctx;
};

/*
 * The socket-table reader, on a thread of its own: reading every
 * namespace's table (and /proc to find them) takes long on a busy host, and
 * the ring must not wait. It only reads the kernel; what it found is
 * compared with the accounting on the reader's thread, between events.
 */
struct watch {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool started, want, busy, quit;
	struct exhaustion_dump *done;	/* the last dump, not yet taken */
};

struct pipeline {
	struct pipeline_opts o;
	struct tracer *tr;	/* told which sockets of the snapshot to watch */
	struct watch w;
	__u64 last_sweep_ns;
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
	pthread_mutex_init(&p->w.lock, NULL);
	pthread_cond_init(&p->w.cond, NULL);
	p->dec = decoder__new();
	if (!p->dec || (o->out && !o->no_events && pipeline__add(p, output__event, o->out)) ||
	    (o->tl && pipeline__add(p, timeline__event, o->tl)) ||
	    /* Before exhaustion: its samples hold what came before the event. */
	    (o->rep && pipeline__add(p, report__event, o->rep)) ||
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
	if (p->w.started) {
		pthread_mutex_lock(&p->w.lock);
		p->w.quit = true;
		pthread_cond_signal(&p->w.cond);
		pthread_mutex_unlock(&p->w.lock);
		pthread_join(p->w.thread, NULL);
	}
	exhaustion_dump__free(p->w.done);
	pthread_mutex_destroy(&p->w.lock);
	pthread_cond_destroy(&p->w.cond);
	decoder__free(p->dec);
	free(p->cons);
	free(p->snap);
	free(p);
}

void pipeline__set_tracer(struct pipeline *p, struct tracer *tr)
{
	p->tr = tr;
}

struct decoder *pipeline__decoder(struct pipeline *p)
{
	return p->dec;
}

int pipeline__event(void *ctx, const struct pt_event *ev)
{
	struct pipeline *p = ctx;

	/* --netns: the decoder saw it (it may need it to make others);
	 * nobody else. */
	if (p->o.netns && ev->type != PT_EV_LOST && ev->sk.netns != p->o.netns)
		return 0;
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
static bool existing_wanted(const struct tracer_opts *t, struct cgroups *cg,
			    const struct pt_event *ev)
{
	bool pid_ok = !t->n_pids, port_ok = !t->n_ports;

	/* --cgroup: what the kernel's filter decides for a process. */
	if (t->cgroup_id && !((ev->flags & PT_F_OWNER_KNOWN) &&
			      cgroups__pid_under(cg, ev->owner.pid, t->cgroup_id, t->cgroup_level)))
		return false;
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

	if (p->o.filter && !existing_wanted(p->o.filter, p->o.cg, ev))
		return 0;
	decoder__remember(p->dec, ev);
	if (p->tr && decoder__prebound(ev) && tracer__watch_release(p->tr, ev->sk.cookie))
		p_warn("the release of the port %u bound before now will not be seen", ev->sk.lport);
	return pipeline__event(p, ev);
}

/*
 * The start-up table, read on a thread of its own: finding owners walks
 * every /proc/PID/fd and each namespace is dumped in turn, seconds on a busy
 * host, with no socket to deliver for long stretches. Its sockets come to
 * the ring's thread through a bounded queue (the reader waits when it is
 * full), so that this thread drains the ring all along.
 */
struct table {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pt_event *q;	/* TABLE_QUEUE of them, a ring */
	size_t head, len;
	bool done;
	int err;
};

static int table_put(void *ctx, const struct pt_event *ev)
{
	struct table *t = ctx;

	pthread_mutex_lock(&t->lock);
	while (t->len == TABLE_QUEUE)
		pthread_cond_wait(&t->cond, &t->lock);
	t->q[(t->head + t->len++) % TABLE_QUEUE] = *ev;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static void *table_main(void *arg)
{
	struct table *t = arg;
	int err = sockdiag__snapshot(table_put, t);

	pthread_mutex_lock(&t->lock);
	t->err = err;
	t->done = true;
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

/* Up to TABLE_BATCH sockets off the queue, into buf; *done when the
 * reader has finished and nothing is left. */
static size_t table_take(struct table *t, struct pt_event *buf, bool *done)
{
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	while (n < TABLE_BATCH && t->len) {
		buf[n++] = t->q[t->head];
		t->head = (t->head + 1) % TABLE_QUEUE;
		t->len--;
	}
	*done = t->done && !t->len;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return n;
}

int pipeline__snapshot(struct pipeline *p)
{
	struct table t = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	struct pt_event *batch = malloc(TABLE_BATCH * sizeof(*batch));
	bool done = false;
	pthread_t thread;
	int err = 0, kept;

	t.q = malloc(TABLE_QUEUE * sizeof(*t.q));
	if (!batch || !t.q) {
		err = -ENOMEM;
		goto out;
	}
	/* No thread: read on this one, as before, the ring waiting. */
	if (pthread_create(&thread, NULL, table_main, &t)) {
		err = sockdiag__snapshot(pipeline__existing, p);
		goto out;
	}
	decoder__hold(p->dec);
	while (!done) {
		size_t n = table_take(&t, batch, &done);

		/* Nothing to deliver: wait for the ring a little instead. */
		if (p->tr)
			tracer__poll(p->tr, n || done ? 0 : 5);
		else if (!n && !done)
			usleep(5000);
		for (size_t i = 0; i < n; i++) {
			int e = pipeline__existing(p, &batch[i]);

			err = err ? err : e;
		}
	}
	pthread_join(thread, NULL);
	err = t.err ? t.err : err;
	/* The records kept meanwhile, in batches; what the ring has between
	 * them joins the end, until the decoder has caught up. */
	while (decoder__holding(p->dec)) {
		if (p->tr)
			tracer__poll(p->tr, 0);
		kept = decoder__release(p->dec, TABLE_BATCH * 16, pipeline__event, p);
		err = err ? err : kept;
	}
out:
	pthread_mutex_destroy(&t.lock);
	pthread_cond_destroy(&t.cond);
	free(t.q);
	free(batch);
	return err;
}

/* A check found a time-wait socket gone early: every consumer hears it, and
 * the decoder drops the expiry it had queued. */
static int on_tw_gone(void *ctx, const struct pt_event *ev)
{
	struct pipeline *p = ctx;

	decoder__tw_gone(p->dec, ev->sk.cookie);
	return pipeline__event(p, ev);
}

static void *watch_main(void *arg)
{
	struct watch *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct exhaustion_dump *dump;

		while (!w->want && !w->quit)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->quit)
			break;
		w->want = false;
		w->busy = true;
		pthread_mutex_unlock(&w->lock);
		dump = exhaustion_dump__take();
		pthread_mutex_lock(&w->lock);
		exhaustion_dump__free(w->done);
		w->done = dump;
		w->busy = false;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void watch_request(struct pipeline *p)
{
	struct watch *w = &p->w;

	if (!w->started) {
		if (pthread_create(&w->thread, NULL, watch_main, w)) {
			if (!p->check_warned)
				p_warn("starting the socket-table reader: %s", strerror(errno));
			p->check_warned = true;
			return;
		}
		w->started = true;
	}
	pthread_mutex_lock(&w->lock);
	w->want = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static struct exhaustion_dump *watch_take(struct watch *w)
{
	struct exhaustion_dump *dump;

	if (!w->started)
		return NULL;
	pthread_mutex_lock(&w->lock);
	dump = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->lock);
	return dump;
}

/*
 * Live: a dump of the socket table when the exhaustion check is due, and
 * at least every half age of the decoder's tables, whose quiet entries the
 * kernel vouches for; a finished dump is compared here, between events.
 */
static void watch_apply(struct pipeline *p, struct exhaustion_dump *dump, __u64 now);

static void watch_tick(struct pipeline *p, __u64 now)
{
	if (!p->o.live)
		return;
	if (!p->last_sweep_ns)
		p->last_sweep_ns = now;
	if ((p->o.ex && p->o.checks && exhaustion__check_due(p->o.ex, now)) ||
	    now - p->last_sweep_ns >= PT_DECODER_AGE_NS / 2) {
		p->last_sweep_ns = now;
		watch_request(p);
	}
	watch_apply(p, watch_take(&p->w), now);
}

/* A dump taken: the decoder's quiet entries vouched for, and with
 * exhaustion checks, the comparison. */
static void watch_apply(struct pipeline *p, struct exhaustion_dump *dump, __u64 now)
{
	const __u64 *cookies;
	size_t n;
	int err;

	if (!dump)
		return;
	err = exhaustion_dump__error(dump);
	if (!err) {
		n = exhaustion_dump__cookies(dump, &cookies);
		for (size_t i = 0; i < n; i++)
			decoder__keep(p->dec, cookies[i]);
	}
	if (!err && p->o.ex && p->o.checks)
		err = exhaustion__check_apply(p->o.ex, dump, now, on_tw_gone, p);
	if (err < 0 && !p->check_warned) {
		p_warn("checking counts against the socket table: %s", strerror(-err));
		p->check_warned = true;
	}
	exhaustion_dump__free(dump);
}

/* With exhaustion: the snapshot record when due; final: the end-of-run one. */
static void snapshot_tick(struct pipeline *p, __u64 now, bool final)
{
	int n;

	/* Text and CSV streams carry no records: build none. */
	if (!p->o.ex || !p->snap)
		return;
	n = final ? exhaustion__json(p->o.ex, now, true, p->snap, SNAPSHOT_MAX, NULL)
		  : exhaustion__snapshot(p->o.ex, now, p->snap, SNAPSHOT_MAX);
	if (n > 0)
		output__raw(p->o.out, p->snap, n);
}

int pipeline__tick(struct pipeline *p, __u64 now_ns)
{
	int err = decoder__tick(p->dec, now_ns, pipeline__event, p);

	if (!err) {
		watch_tick(p, now_ns);
		snapshot_tick(p, now_ns, false);
	}
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

/* The stream ends: a dump under way is waited for, so that the last
 * record has the check that was due. */
static void watch_finish(struct pipeline *p, __u64 now)
{
	struct watch *w = &p->w;

	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	while (w->want || w->busy)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	watch_apply(p, watch_take(w), now);
}

int pipeline__end(struct pipeline *p, __u64 now_ns)
{
	int err = decoder__end(p->dec, pipeline__event, p);

	if (!err && p->o.live)
		watch_finish(p, now_ns ? now_ns : clock__ns(CLOCK_MONOTONIC));

	if (!err)
		snapshot_tick(p, now_ns, true);
	return err;
}

void pipeline__stats(const struct pipeline *p, struct run_stats *st)
{
	st->lost = p->lost_seen;
	st->bad = decoder__bad_records(p->dec);
	st->aged = decoder__aged(p->dec);
}
