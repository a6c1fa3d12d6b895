// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "decoder.h"
#include "holders.h"
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
	/* Owner of each TCP socket from its connect() or accept() to its
	 * CLOSE (or, for a port bind() pinned, its release), and of sockets
	 * of the start-up snapshot: the kernel names it only in the record of
	 * that call, so that it need not store it for every socket. */
	struct socktab *owners;
	/* Who holds each port now: what a failed bind() ran into. */
	struct holders *holders;
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
	d->holders = holders__new();
	if (!d->socks || !d->owners || !d->children || !d->tw_gone || !d->holders) {
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
	holders__free(d->holders);
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

/* Every event leaves through here: the port holders see what consumers see. */
static int emit(struct decoder *d, pt_event_fn fn, void *ctx, const struct pt_event *ev)
{
	holders__event(d->holders, ev);
	return fn(ctx, ev);
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
		err = emit(d, fn, ctx, &ev);
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
	holders__forget(d->holders, cookie);
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

/*
 * Is the process that held a listener still there, now? Asked at most once a
 * second of event time per listener; kill(pid, 0) costs a syscall. Only ever
 * asked to hand the listener to an acceptor, which holds it as truly: the
 * answer is about now, not about the time of the records being decoded.
 */
static bool holder_alive(struct holders_listener *l, __u64 now)
{
	if (!l->owner.pid)
		return false;
	if (l->checked_ns && now < l->checked_ns + 1000000000ULL)
		return true;
	if (kill((pid_t)l->owner.pid, 0) && errno == ESRCH)
		return false;
	l->checked_ns = now;
	return true;
}

/*
 * accept() named the owner of a child. The listener it came from is held
 * by the acceptor too (accept() takes the listener's fd): when the process
 * that called listen() is gone (a daemon that forked and exited), the
 * acceptor is the listener's holder from now on, and the listener's later
 * records name it, never a pid that no longer exists.
 */
static void accepted(struct decoder *d, const struct pt_event *ev)
{
	struct holders_listener *l;

	socktab__put(d->owners, ev->sk.cookie, &ev->owner);
	l = holders__listener(d->holders, ev->sk.netns, ev->sk.lport);
	if (!l || l->owner.pid == ev->owner.pid || holder_alive(l, ev->ts_ns))
		return;
	l->owner = ev->owner;
	l->checked_ns = ev->ts_ns;
	socktab__put(d->owners, l->cookie, &ev->owner);
}

/*
 * The owner of a socket's record that does not come from its owner's own
 * context: the one the decoder carries (connect(), accept(), the start-up
 * snapshot, a listener's new holder) first, as the kernel's copy in socket
 * storage may name a listener's first owner; for a child not accepted yet,
 * its listener's holder.
 */
static void owner_of(struct decoder *d, struct pt_event *ev, __u32 *flags)
{
	const struct pt_owner *o = socktab__get(d->owners, ev->sk.cookie);
	struct holders_listener *l;

	if (o) {
		ev->owner = *o;
		*flags |= PT_F_OWNER_KNOWN;
	} else if ((*flags & PT_F_ACCEPTED) &&
		   (l = holders__listener(d->holders, ev->sk.netns, ev->sk.lport)) &&
		   l->owner.pid) {
		/* The kernel's copy names who called listen(), who may be
		 * gone: the listener's holder, an acceptor once that one was
		 * found gone, knows better. */
		ev->owner = l->owner;
		*flags |= PT_F_OWNER_KNOWN;
	}
}

/* A transition can also end or hand over the port: one record, two events. */
static int decode_state(struct decoder *d, const struct pt_rec_state *r, pt_event_fn fn, void *ctx)
{
	struct pt_event ev = {.type = PT_EV_STATE};
	__u32 flags = r->flags;
	__u8 one = 1;
	int err;

	copy_common(&ev, &r->hdr, &r->owner, &r->sk);
	if (r->oldstate == TCP_LISTEN && r->newstate == TCP_SYN_RECV)
		socktab__put(d->children, r->sk.cookie, &one);
	/* A child of a listener older than tracing, which the kernel could
	 * not mark. */
	if (socktab__get(d->children, r->sk.cookie))
		flags |= PT_F_ACCEPTED;
	if ((flags & PT_F_OWNER_KNOWN) &&
	    ((r->oldstate == TCP_CLOSE &&
	      (r->newstate == TCP_SYN_SENT || r->newstate == TCP_LISTEN)) ||
	     (r->oldstate == TCP_LISTEN && r->newstate == TCP_CLOSE))) {
		/* The caller of connect(), listen() or a listener's close()
		 * names itself; listeners keep theirs in socket storage. */
		if (r->newstate == TCP_SYN_SENT)
			socktab__put(d->owners, r->sk.cookie, &ev.owner);
		else
			socktab__take(d->owners, r->sk.cookie, NULL);
	} else {
		owner_of(d, &ev, &flags);
	}
	if (r->newstate == TCP_CLOSE) {
		/* A port bind() pinned stays, and so does its owner, until
		 * the release that sock_release sends. */
		if ((flags & (PT_F_RELEASE | PT_F_TIMEWAIT | PT_F_ACCEPTED)) ||
		    !(r->opts & PT_OPT_BOUND_PORT))
			socktab__take(d->owners, r->sk.cookie, NULL);
		/* A child's port is its listener's: only a time-wait socket
		 * it leaves holds it on. */
		if (socktab__take(d->children, r->sk.cookie, NULL))
			flags &= ~PT_F_RELEASE;
	}
	if (r->flags & PT_F_FOLDED_SYNRECV) {
		/* The child's birth, sent along with its next transition. */
		struct pt_event born = ev;

		born.ts_ns = r->folded_ns;
		born.oldstate = TCP_LISTEN;
		born.newstate = TCP_SYN_RECV;
		born.flags = flags & ~(PT_F_FOLDED_SYNRECV | PT_F_RELEASE | PT_F_TIMEWAIT);
		err = emit(d, fn, ctx, &born);
		if (err)
			return err;
	}
	ev.oldstate = r->oldstate;
	ev.newstate = r->newstate;
	ev.reason = r->reason < PT_REASON_MAX ? r->reason : PT_REASON_NONE;
	ev.opts = r->opts;
	ev.flags = flags & ~PT_F_FOLDED_SYNRECV;
	err = emit(d, fn, ctx, &ev);
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
		err = emit(d, fn, ctx, &ev);
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
		return emit(d, fn, ctx, &ev);
	}
	if (r->newstate == TCP_LISTEN) {
		ev.kind = PT_PORT_LISTEN;
		ev.reason = PT_REASON_NONE;
		return emit(d, fn, ctx, &ev);
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
	struct pt_held held;

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

	if (r->kind == PT_PORT_ACCEPT) {
		accepted(d, &ev);
	} else if (r->kind == PT_PORT_BIND_FAIL && r->err == EADDRINUSE && r->req_port &&
		   holders__lookup(d->holders, ev.sk.netns, ev.sk.proto, r->req_port, ev.ts_ns,
				   &held)) {
		/* What holds the port: the question a failed restart asks. */
		ev.held = &held;
		ev.flags |= PT_F_HELD;
	} else if (r->kind == PT_PORT_CONNECT && r->sk.proto == IPPROTO_UDP) {
		/* connect() gave a bound UDP socket its peer and its source
		 * address: its release, which cannot read them, says them. */
		struct sock_seen *had = socktab__get(d->socks, ev.sk.cookie);

		if (had) {
			memcpy(had->sk.laddr, ev.sk.laddr, sizeof(had->sk.laddr));
			memcpy(had->sk.raddr, ev.sk.raddr, sizeof(had->sk.raddr));
			had->sk.rport = ev.sk.rport;
		}
	}

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
			int err = emit(d, fn, ctx, &rel);

			if (err)
				return err;
		}
		socktab__put(d->socks, ev.sk.cookie, &seen);
		/*
		 * A UDP socket bound to a port it asked for receives on it
		 * from now on: a service. One that let the kernel pick (bind
		 * to port 0, as dig and resolver libraries do before they
		 * connect) is a client's: listing it would drown an exposure
		 * audit in every lookup the host makes.
		 */
		if (r->kind == PT_PORT_BIND && r->sk.proto == IPPROTO_UDP && r->req_port) {
			int err = emit(d, fn, ctx, &ev);

			if (err)
				return err;
			ev.kind = PT_PORT_LISTEN;
		}
	} else if (r->kind == PT_PORT_RELEASE) {
		struct sock_seen e;
		struct pt_owner o;

		/* Carried since connect(), accept() or the snapshot: it knows
		 * better than the copy in socket storage. */
		if (socktab__take(d->owners, r->sk.cookie, &o)) {
			ev.owner = o;
			ev.flags |= PT_F_OWNER_KNOWN;
		}
		if (socktab__take(d->socks, r->sk.cookie, &e)) {
			__u16 port = ev.sk.lport;

			ev.sk = e.sk;
			if (port)
				ev.sk.lport = port;
			if (!(ev.flags & PT_F_OWNER_KNOWN) && e.owner.pid) {
				ev.owner = e.owner;
				ev.flags |= PT_F_OWNER_KNOWN;
			}
		} else if (!ev.sk.lport) {
			/* Never held a port we know of (a UDP socket that never
			 * sent, or one older than tracing): nothing to give back. */
			return 0;
		}
	}
	return emit(d, fn, ctx, &ev);
}

void decoder__remember(struct decoder *d, const struct pt_event *ev)
{
	struct sock_seen seen = {.sk = ev->sk, .owner = ev->owner};

	holders__event(d->holders, ev);
	if (!ev->sk.lport)
		return;
	/* A UDP socket, or a TCP one only bound, gives its port back in a
	 * release record that cannot read its addresses. */
	if (ev->sk.proto == IPPROTO_UDP || decoder__prebound(ev))
		socktab__put(d->socks, ev->sk.cookie, &seen);
	/* Its later records run in softirq or sock_release: the owner /proc
	 * named goes with them. */
	if (ev->sk.proto == IPPROTO_TCP && (ev->flags & PT_F_OWNER_KNOWN))
		socktab__put(d->owners, ev->sk.cookie, &ev->owner);
}

bool decoder__prebound(const struct pt_event *ev)
{
	return ev->sk.proto == IPPROTO_TCP && ev->kind == PT_PORT_EXISTING &&
	       ev->newstate == TCP_CLOSE && ev->sk.lport && !ev->latency_ns;
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
