// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include "decoder.h"
#include "socktab.h"

/* Enough for every socket of a busy host; past it releases of UDP and bound
 * sockets lose their addresses, never their count. */
#define SOCKTAB_MAX (1u << 20)

/* The expiries, oldest first: every hold lasts PT_TIMEWAIT_NS, so arrival
 * order is expiry order and a ring buffer is enough. */
struct tw_queue {
	struct pt_event *ev;
	size_t head, len, cap;
};

/* What a release record from cgroup/sock_release is completed with. */
struct sock_seen {
	struct pt_sock sk;
	struct pt_owner owner;
};

struct decoder {
	struct socktab *socks;
	/* Owner of each TCP socket from its connect() to its CLOSE: the
	 * kernel names it only in the record of that call, so that it need
	 * not store it for every socket. */
	struct socktab *owners;
	/* Children sent with their own LISTEN -> SYN_RECV (those of
	 * listeners older than tracing), until their CLOSE: the kernel could
	 * not mark them, and the port of one gives back nothing. */
	struct socktab *children;
	struct tw_queue tw;
	/* Time-wait sockets found gone before their expiry was due: the
	 * queued release of each is dropped when it comes up. */
	struct socktab *tw_gone;
	unsigned long long bad;
};

struct decoder *decoder__new(void)
{
	struct decoder *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->socks = socktab__new(SOCKTAB_MAX, sizeof(struct sock_seen));
	d->owners = socktab__new(SOCKTAB_MAX, sizeof(struct pt_owner));
	d->children = socktab__new(SOCKTAB_MAX, 1);
	d->tw_gone = socktab__new(SOCKTAB_MAX, 1);
	if (!d->socks || !d->owners || !d->children || !d->tw_gone) {
		decoder__free(d);
		return NULL;
	}
	return d;
}

void decoder__free(struct decoder *d)
{
	if (!d)
		return;
	socktab__free(d->socks);
	socktab__free(d->owners);
	socktab__free(d->children);
	socktab__free(d->tw_gone);
	free(d->tw.ev);
	free(d);
}

unsigned long long decoder__bad_records(const struct decoder *d)
{
	return d->bad;
}

static int tw_push(struct tw_queue *q, const struct pt_event *ev)
{
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 256;
		struct pt_event *n = malloc(cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		for (size_t i = 0; i < q->len; i++)
			n[i] = q->ev[(q->head + i) % q->cap];
		free(q->ev);
		q->ev = n;
		q->head = 0;
		q->cap = cap;
	}
	q->ev[(q->head + q->len) % q->cap] = *ev;
	q->len++;
	return 0;
}

int decoder__tick(struct decoder *d, __u64 now_ns, pt_event_fn fn, void *ctx)
{
	struct tw_queue *q = &d->tw;

	while (q->len && q->ev[q->head].ts_ns <= now_ns) {
		struct pt_event ev = q->ev[q->head];
		int err;

		q->head = (q->head + 1) % q->cap;
		q->len--;
		if (socktab__take(d->tw_gone, ev.sk.cookie, NULL))
			continue;
		err = fn(ctx, &ev);
		if (err)
			return err;
	}
	return 0;
}

/*
 * Marked, not looked for: searching the queue (a minute of time-wait
 * sockets) for each one found gone made a check quadratic when the kernel
 * makes none at all (tcp_max_tw_buckets). A mark whose expiry is not queued
 * (a time-wait socket older than tracing) is never taken; there are at most
 * as many as were found at start-up.
 */
void decoder__tw_gone(struct decoder *d, __u64 cookie)
{
	__u8 one = 1;

	socktab__put(d->tw_gone, cookie, &one);
}

static void copy_common(struct pt_event *ev, const struct pt_hdr *h, const struct pt_owner *o,
			const struct pt_sock *sk)
{
	ev->cpu = h->cpu;
	ev->ts_ns = h->ts_ns;
	ev->owner = *o;
	ev->owner.comm[PT_TASK_COMM_LEN - 1] = '\0';
	ev->sk = *sk;
}

/* A transition can also end or hand over the port: one record, two events. */
static int decode_state(struct decoder *d, const struct pt_rec_state *r, pt_event_fn fn, void *ctx)
{
	struct pt_event ev = {.type = PT_EV_STATE};
	__u32 flags = r->flags;
	__u8 one = 1;
	int err;

	copy_common(&ev, &r->hdr, &r->owner, &r->sk);
	if (!(flags & PT_F_OWNER_KNOWN)) {
		const struct pt_owner *o = socktab__get(d->owners, r->sk.cookie);

		if (o) {
			ev.owner = *o;
			flags |= PT_F_OWNER_KNOWN;
		}
	} else if (r->oldstate == TCP_CLOSE && r->newstate == TCP_SYN_SENT) {
		/* Listeners keep theirs in socket storage. */
		socktab__put(d->owners, r->sk.cookie, &ev.owner);
	}
	if (r->oldstate == TCP_LISTEN && r->newstate == TCP_SYN_RECV)
		socktab__put(d->children, r->sk.cookie, &one);
	if (r->newstate == TCP_CLOSE) {
		socktab__take(d->owners, r->sk.cookie, NULL);
		if (socktab__take(d->children, r->sk.cookie, NULL))
			flags &= ~(PT_F_RELEASE | PT_F_TIMEWAIT);
	}
	if (r->flags & PT_F_FOLDED_SYNRECV) {
		/* The child's birth, sent along with its next transition. */
		struct pt_event born = ev;

		born.ts_ns = r->folded_ns;
		born.oldstate = TCP_LISTEN;
		born.newstate = TCP_SYN_RECV;
		born.flags = flags & ~(PT_F_FOLDED_SYNRECV | PT_F_RELEASE | PT_F_TIMEWAIT);
		err = fn(ctx, &born);
		if (err)
			return err;
	}
	ev.oldstate = r->oldstate;
	ev.newstate = r->newstate;
	ev.reason = r->reason < PT_REASON_MAX ? r->reason : PT_REASON_NONE;
	ev.opts = r->opts;
	ev.flags = flags & ~PT_F_FOLDED_SYNRECV;
	err = fn(ctx, &ev);
	if (err)
		return err;

	ev.type = PT_EV_PORT;
	ev.flags &= ~(PT_F_RELEASE | PT_F_TIMEWAIT);
	if (flags & (PT_F_RELEASE | PT_F_TIMEWAIT)) {
		/* bind(addr, 0) then connect(): given back at CLOSE. */
		socktab__take(d->socks, r->sk.cookie, NULL);
	}
	if (flags & PT_F_TIMEWAIT) {
		ev.kind = PT_PORT_TIMEWAIT;
		err = fn(ctx, &ev);
		if (err)
			return err;
		ev.kind = PT_PORT_RELEASE;
		ev.reason = PT_REASON_TW_EXPIRED;
		ev.ts_ns += PT_TIMEWAIT_NS;
		ev.flags |= PT_F_COMPUTED;
		return tw_push(&d->tw, &ev);
	}
	if (flags & PT_F_RELEASE) {
		ev.kind = PT_PORT_RELEASE;
		return fn(ctx, &ev);
	}
	if (r->newstate == TCP_LISTEN) {
		ev.kind = PT_PORT_LISTEN;
		ev.reason = PT_REASON_NONE;
		return fn(ctx, &ev);
	}
	return 0;
}

/* Sockets whose port is given back at sock_release are remembered until
 * then: every UDP socket, and TCP sockets with an explicit bind(). */
static bool held_until_release(const struct pt_rec_port *r)
{
	if (r->kind != PT_PORT_BIND && r->kind != PT_PORT_ALLOC)
		return false;
	return r->sk.proto == IPPROTO_UDP || r->kind == PT_PORT_BIND;
}

static int decode_port(struct decoder *d, const struct pt_rec_port *r, pt_event_fn fn, void *ctx)
{
	struct pt_event ev = {.type = PT_EV_PORT};

	if (r->kind == 0 || r->kind >= PT_PORT_KIND_MAX || r->reason >= PT_REASON_MAX) {
		d->bad++;
		return 0;
	}
	copy_common(&ev, &r->hdr, &r->owner, &r->sk);
	ev.kind = r->kind;
	ev.reason = r->reason;
	ev.opts = r->opts;
	ev.req_port = r->req_port;
	ev.flags = r->flags;
	ev.err = r->err;
	ev.latency_ns = r->latency_ns;

	if (held_until_release(r) && ev.sk.lport) {
		struct sock_seen seen = {.sk = ev.sk, .owner = ev.owner};
		struct sock_seen *had = socktab__get(d->socks, ev.sk.cookie);

		/*
		 * A UDP socket gets a port from bind() or autobind only when it
		 * has none, so one it held before went back in between: by a
		 * disconnect, connect(AF_UNSPEC), which no hook here sees. Say
		 * so before the new port, at the time it became known.
		 */
		if (had && r->sk.proto == IPPROTO_UDP) {
			struct pt_event rel = {
				.type = PT_EV_PORT,
				.cpu = ev.cpu,
				.ts_ns = ev.ts_ns,
				.owner = had->owner,
				.sk = had->sk,
				.kind = PT_PORT_RELEASE,
				.reason = PT_REASON_DISCONNECT,
				.flags = PT_F_COMPUTED | (had->owner.pid ? PT_F_OWNER_KNOWN : 0),
			};
			int err = fn(ctx, &rel);

			if (err)
				return err;
		}
		socktab__put(d->socks, ev.sk.cookie, &seen);
		/* A bound UDP socket receives on its port from now on. */
		if (r->kind == PT_PORT_BIND && r->sk.proto == IPPROTO_UDP) {
			int err = fn(ctx, &ev);

			if (err)
				return err;
			ev.kind = PT_PORT_LISTEN;
		}
	} else if (r->kind == PT_PORT_RELEASE) {
		struct sock_seen e;

		if (socktab__take(d->socks, r->sk.cookie, &e)) {
			__u16 port = ev.sk.lport;

			ev.sk = e.sk;
			if (port)
				ev.sk.lport = port;
			if (!(ev.flags & PT_F_OWNER_KNOWN)) {
				ev.owner = e.owner;
				ev.flags |= PT_F_OWNER_KNOWN;
			}
		} else if (!ev.sk.lport) {
			/* Never held a port we know of (a UDP socket that never
			 * sent, or one older than tracing): nothing to give back. */
			return 0;
		}
	}
	return fn(ctx, &ev);
}

void decoder__remember(struct decoder *d, const struct pt_event *ev)
{
	struct sock_seen seen = {.sk = ev->sk, .owner = ev->owner};

	if (ev->sk.proto == IPPROTO_UDP && ev->sk.lport)
		socktab__put(d->socks, ev->sk.cookie, &seen);
}

int decoder__record(struct decoder *d, const void *data, size_t len, pt_event_fn fn, void *ctx)
{
	const struct pt_hdr *h = data;

	if (len < sizeof(*h) || h->size > len) {
		d->bad++;
		return 0;
	}
	switch (h->type) {
	case PT_REC_STATE:
		if (h->size != sizeof(struct pt_rec_state))
			break;
		return decode_state(d, data, fn, ctx);
	case PT_REC_PORT:
		if (h->size != sizeof(struct pt_rec_port))
			break;
		return decode_port(d, data, fn, ctx);
	default:
		break;
	}
	d->bad++;
	return 0;
}
