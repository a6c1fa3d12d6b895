// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * exhaustion's reconciliation with the kernel: a dump of every namespace's
 * socket table (made on a thread of its own, looking at the kernel only),
 * compared socket by socket with what the events counted, and the
 * time-wait sockets the kernel killed without an event given back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <time.h>
#include "exhaustion_int.h"
#include "clock.h"
#include "array.h"
#include "log.h"
#include "sockdiag.h"

/* ---- the check against the kernel's table ---- */

/*
 * What one dump of the kernel's socket table found, made without looking
 * at the accounting: so it can be made on a thread of its own while the
 * ring is drained, and compared (exhaustion__check_apply) between events.
 */
struct exhaustion_dump {
	struct socktab *listen;	/* this dump's listeners */
	struct socktab *held;	/* cookies the kernel counts */
	struct socktab *reach;	/* namespaces a dump reads */
	struct dumped *socks;	/* those counted, in dump order */
	size_t n, cap;
	__u64 *all;		/* every socket's cookie, counted or not */
	size_t nall, cap_all;
	__u64 dump_ns;		/* how long the dump took */
	int err;
};

struct dumped {
	__u64 cookie;
	__u32 netns;
	__u8 proto;
	__u8 cls;		/* enum xclass, as the table alone tells it */
	bool tw;		/* in TIME_WAIT: events may know it as XC_SERVER */
};

/* The same rules as the start-up snapshot, with the range and reserved
 * ports as the kernel has them now. */
static int dump_event(void *ctx, const struct pt_event *ev)
{
	struct exhaustion_dump *c = ctx;
	const struct pt_sock *sk = &ev->sk;
	struct dumped *v;
	__u64 *all;
	enum xclass cls;
	__u8 one = 1;
	int state;

	if (sk->cookie) {
		all = array__grow(c->all, &c->cap_all, c->nall + 1, sizeof(*all));
		if (!all)
			return c->err = -ENOMEM;
		c->all = all;
		c->all[c->nall++] = sk->cookie;
	}
	if (!classify_existing(c->listen, ev, &cls, &state))
		return 0;
	/* Server-side time-wait sockets are compared apart, in range or not;
	 * so is any time-wait one, which events may know came from an
	 * accepted socket whose listener is gone (decided when compared). */
	if (cls != XC_SERVER && state != EXH_TIME_WAIT &&
	    (!pt_event_in_range(ev) || (ev->flags & PT_F_RESERVED)))
		return 0;
	v = array__grow(c->socks, &c->cap, c->n + 1, sizeof(*v));
	if (!v || !socktab__put(c->held, sk->cookie, &one))
		return c->err = -ENOMEM;
	c->socks = v;
	c->socks[c->n++] = (struct dumped){sk->cookie, sk->netns, sk->proto, cls,
					   state == EXH_TIME_WAIT};
	/* Counted only when in the range: marked so by tw staying false. */
	if (cls == XC_DEST && (!pt_event_in_range(ev) || (ev->flags & PT_F_RESERVED)))
		c->socks[c->n - 1].cls = XC_SERVER + 1;
	return 0;
}

void exhaustion_dump__free(struct exhaustion_dump *c)
{
	if (!c)
		return;
	socktab__free(c->listen);
	socktab__free(c->held);
	socktab__free(c->reach);
	free(c->socks);
	free(c->all);
	free(c);
}

struct exhaustion_dump *exhaustion_dump__take(void)
{
	struct exhaustion_dump *c = calloc(1, sizeof(*c));
	__u64 start = clock__ns(CLOCK_MONOTONIC);
	__u32 *ns = NULL;
	size_t nns = 0;
	__u8 one = 1;

	if (!c)
		return NULL;
	c->listen = socktab__new(1u << 22, 1);
	c->held = socktab__new(MAX_SOCKS, 1);
	c->reach = socktab__new(1u << 20, 1);
	if (!c->listen || !c->held || !c->reach) {
		c->err = -ENOMEM;
		return c;
	}
	/* A namespace no dump can read (deleted, held by an open file only)
	 * is left out: its sockets may be gone without a word. */
	c->err = sockdiag__namespaces(&ns, &nns);
	for (size_t i = 0; !c->err && i < nns; i++)
		socktab__put(c->reach, ns[i], &one);
	free(ns);
	if (!c->err) {
		int err = sockdiag__dump(0, dump_event, c);

		if (err)
			c->err = err;
	}
	c->dump_ns = clock__ns(CLOCK_MONOTONIC) - start;
	return c;
}

int exhaustion_dump__error(const struct exhaustion_dump *c)
{
	return c->err;
}

size_t exhaustion_dump__cookies(const struct exhaustion_dump *c, const __u64 **v)
{
	*v = c->all;
	return c->nall;
}

bool exhaustion__check_due(struct exhaustion *e, __u64 now_ns)
{
	if (!e->o.live)
		return false;
	if (!e->last_check_ns)
		e->last_check_ns = now_ns;
	if (now_ns - e->last_check_ns < e->interval_ns)
		return false;
	e->last_check_ns = now_ns;
	return true;
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
		    !s->counted || socktab__get(held, s->cookie))
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
int exhaustion__check_apply(struct exhaustion *e, const struct exhaustion_dump *c, __u64 now_ns,
			    pt_event_fn gone, void *ctx)
{
	struct socktab *now_diff = NULL;
	__u64 start = clock__ns(CLOCK_MONOTONIC);
	__u8 one = 1;
	int err = c->err;

	if (err)
		return err;
	now_diff = socktab__new(MAX_SOCKS, 1);
	if (!now_diff)
		return -ENOMEM;
	memset(&e->chk, 0, sizeof(e->chk));
	e->check_unreachable = 0;
	for (size_t i = 0; i < e->npools; i++) {
		struct xpool *p = e->pools[i];

		memset(&p->chk, 0, sizeof(p->chk));
		p->chk.reachable = socktab__get(c->reach, p->ns->inode) != NULL;
		if (p->chk.reachable && p->proto == IPPROTO_TCP &&
		    (err = tw_reconcile(p, c->held, now_ns, gone, ctx)))
			goto cleanup;
		for (struct xsock *s = p->socks; s; s = s->next) {
			if (s->cls == XC_SERVER && p->chk.reachable) {
				p->chk.srv_events++;
				p->chk.srv_extra += !socktab__get(c->held, s->cookie);
			}
			if (!s->counted)
				continue;
			if (!p->chk.reachable) {
				e->check_unreachable++;
				continue;
			}
			p->chk.events++;
			if (!socktab__get(c->held, s->cookie)) {
				p->chk.extra++;
				socktab__put(now_diff, s->cookie, &one);
				p->chk.persistent += socktab__get(e->mismatch, s->cookie) != NULL;
			}
		}
	}
	for (size_t i = 0; i < c->n; i++) {
		struct xsock *s = sock_get(e, c->socks[i].cookie);
		struct xpool *p = pool_find(e, c->socks[i].netns, c->socks[i].proto);
		struct pool_check *pc = p ? &p->chk : &e->chk;

		/* One events saw made by an accepted socket, its listener gone. */
		if (c->socks[i].cls == XC_SERVER ||
		    (c->socks[i].tw && s && s->cls == XC_SERVER)) {
			pc->srv_kernel++;
			pc->srv_missing += !s || s->cls != XC_SERVER;
			continue;
		}
		if (c->socks[i].cls != XC_DEST && c->socks[i].cls != XC_SHARED)
			continue;	/* out of the range: not counted */
		pc->kernel++;
		if (!s || !s->counted) {
			pc->missing++;
			socktab__put(now_diff, c->socks[i].cookie, &one);
			pc->persistent += socktab__get(e->mismatch, c->socks[i].cookie) != NULL;
		}
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
	e->check_dump_ns = c->dump_ns;
	e->check_apply_ns = clock__ns(CLOCK_MONOTONIC) - start;
	err = 1;
cleanup:
	socktab__free(now_diff);
	return err;
}

