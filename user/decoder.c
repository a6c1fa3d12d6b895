// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "array.h"
#include "decoder.h"
#include "holders.h"
#include "socktab.h"

/* Per generation of a table; past it releases of UDP and bound sockets
 * lose their addresses, never their count. */
#define SOCKTAB_MAX (1u << 20)

/*
 * A table whose entries live while records touch them: two generations,
 * and every PT_DECODER_AGE_NS the older one is forgotten (counted) and the
 * current one becomes the older. A hit in the older moves the entry back.
 * So an entry whose closing record never came costs memory for at most two
 * ages, and no work at all until then.
 */
struct gentab {
	struct socktab *cur, *old;
	size_t val_size;
};

/* A FIFO of events due in arrival order (every wait is the same length). */
struct ev_queue {
	struct pt_event *ev;
	size_t head, len, cap;
};

/* A min-heap of events by time, for waits of differing lengths. */
struct ev_heap {
	struct pt_event *ev;
	size_t n, cap;
};

/* What a release record from cgroup/sock_release is completed with. */
struct sock_seen {
	struct pt_sock sk;
	struct pt_owner owner;
};

struct decoder {
	struct gentab socks;
	/* Owner of each TCP socket from its connect() or accept() to its
	 * CLOSE (or, for a port bind() pinned, its release), and of sockets
	 * of the start-up snapshot: the kernel names it only in the record of
	 * that call, so that it need not store it for every socket. */
	struct gentab owners;
	/* Who holds each port now: what a failed bind() ran into. */
	struct holders *holders;
	/* Children sent with their own LISTEN -> SYN_RECV (those of
	 * listeners older than tracing), until their CLOSE: the kernel could
	 * not mark them, and the port of one gives back nothing. */
	struct gentab children;
	/* Time-wait sockets found gone before their expiry was due: the
	 * queued release of each is dropped when it comes up. */
	struct gentab tw_gone;
	/* connect()s that closed without a port, by cookie: the alloc-fail
	 * to send (or to complete) once their syscall exit says why. */
	struct gentab no_port;
	struct ev_queue tw;		/* time-wait ends, PT_TIMEWAIT_NS after */
	struct ev_queue no_port_q;	/* the same alloc-fails, due after the wait */
	struct ev_heap early;		/* ends of time-wait sockets found at start-up */
	/* Records kept by decoder__hold(): each as a __u64 length, then the
	 * record, padded to 8 bytes so that each stays aligned; the first
	 * off bytes are decoded already. */
	struct {
		unsigned char *buf;
		size_t off, len, cap;
		bool on;
	} kept;
	__u64 aged_at;			/* record time the tables last aged */
	unsigned long long bad, aged;
};

static int gentab_init(struct gentab *g, size_t val_size)
{
	g->val_size = val_size;
	g->cur = socktab__new(SOCKTAB_MAX, val_size);
	g->old = socktab__new(SOCKTAB_MAX, val_size);
	return g->cur && g->old ? 0 : -ENOMEM;
}

static void gentab_free(struct gentab *g)
{
	socktab__free(g->cur);
	socktab__free(g->old);
}

/* The older generation is empty for the first age of every run: no
 * lookup there then. */
static bool gentab_put(struct gentab *g, __u64 cookie, const void *val)
{
	if (socktab__count(g->old))
		socktab__take(g->old, cookie, NULL);
	return socktab__put(g->cur, cookie, val);
}

static void *gentab_get(struct gentab *g, __u64 cookie)
{
	void *v = socktab__get(g->cur, cookie);
	unsigned char buf[sizeof(struct sock_seen) + sizeof(struct pt_event)];

	if (v || !socktab__count(g->old) || !socktab__take(g->old, cookie, buf))
		return v;
	if (!socktab__put(g->cur, cookie, buf))
		return NULL;
	return socktab__get(g->cur, cookie);
}

static bool gentab_take(struct gentab *g, __u64 cookie, void *out)
{
	return socktab__take(g->cur, cookie, out) ||
	       (socktab__count(g->old) && socktab__take(g->old, cookie, out));
}

static unsigned long long gentab_age(struct gentab *g)
{
	struct socktab *fresh = socktab__new(SOCKTAB_MAX, g->val_size);
	unsigned long long n;

	if (!fresh)
		return 0;	/* tried again at the next age */
	n = socktab__count(g->old);
	socktab__free(g->old);
	g->old = g->cur;
	g->cur = fresh;
	return n;
}

static size_t gentab_count(const struct gentab *g)
{
	return socktab__count(g->cur) + socktab__count(g->old);
}

/* Time moved to ts: every PT_DECODER_AGE_NS the tables age. */
static void age(struct decoder *d, __u64 ts)
{
	if (!d->aged_at || ts < d->aged_at) {
		d->aged_at = ts;
		return;
	}
	if (ts - d->aged_at < PT_DECODER_AGE_NS)
		return;
	d->aged_at = ts;
	d->aged += gentab_age(&d->socks) + gentab_age(&d->owners) + gentab_age(&d->children) +
		   gentab_age(&d->tw_gone) + gentab_age(&d->no_port);
}

struct decoder *decoder__new(void)
{
	struct decoder *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	if (gentab_init(&d->socks, sizeof(struct sock_seen)) ||
	    gentab_init(&d->owners, sizeof(struct pt_owner)) || gentab_init(&d->children, 1) ||
	    gentab_init(&d->tw_gone, 1) || gentab_init(&d->no_port, sizeof(struct pt_event)) ||
	    !(d->holders = holders__new())) {
		decoder__free(d);
		return NULL;
	}
	return d;
}

void decoder__free(struct decoder *d)
{

	if (!d)
		return;
	gentab_free(&d->socks);
	gentab_free(&d->owners);
	gentab_free(&d->children);
	gentab_free(&d->tw_gone);
	gentab_free(&d->no_port);
	holders__free(d->holders);
	free(d->kept.buf);
	free(d->tw.ev);
	free(d->no_port_q.ev);
	free(d->early.ev);
	free(d);
}

unsigned long long decoder__bad_records(const struct decoder *d)
{
	return d->bad;
}

unsigned long long decoder__aged(const struct decoder *d)
{
	return d->aged;
}

size_t decoder__entries(const struct decoder *d)
{
	return gentab_count(&d->socks) + gentab_count(&d->owners) + gentab_count(&d->children) +
	       gentab_count(&d->tw_gone) + gentab_count(&d->no_port) + d->tw.len +
	       d->no_port_q.len + d->early.n;
}

static int q_push(struct ev_queue *q, const struct pt_event *ev)
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

static const struct pt_event *q_peek(const struct ev_queue *q)
{
	return q->len ? &q->ev[q->head] : NULL;
}

static struct pt_event q_pop(struct ev_queue *q)
{
	struct pt_event ev = q->ev[q->head];

	q->head = (q->head + 1) % q->cap;
	q->len--;
	return ev;
}

static int heap_push(struct ev_heap *h, const struct pt_event *ev)
{
	struct pt_event *v = array__grow(h->ev, &h->cap, h->n + 1, sizeof(*v));
	size_t i;

	if (!v)
		return -ENOMEM;
	h->ev = v;
	for (i = h->n++; i && v[(i - 1) / 2].ts_ns > ev->ts_ns; i = (i - 1) / 2)
		v[i] = v[(i - 1) / 2];
	v[i] = *ev;
	return 0;
}

static struct pt_event heap_pop(struct ev_heap *h)
{
	struct pt_event *v = h->ev, top = v[0], last = v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && v[c + 1].ts_ns < v[c].ts_ns)
			c++;
		if (v[c].ts_ns >= last.ts_ns)
			break;
		v[i] = v[c];
		i = c;
	}
	if (h->n)
		v[i] = last;
	return top;
}

/* Due at: a time-wait end at its time, a no-port alloc-fail after its wait. */
static __u64 due_of(const struct pt_event *ev, bool no_port)
{
	return no_port ? ev->ts_ns + PT_NO_PORT_WAIT_NS : ev->ts_ns;
}

/* Every event leaves through here: the port holders see what consumers see. */
static int emit(struct decoder *d, pt_event_fn fn, void *ctx, const struct pt_event *ev)
{
	holders__event(d->holders, ev);
	return fn(ctx, ev);
}

/* The no-port alloc-fail of cookie, if it still waits (queued at ts). */
static int no_port_send(struct decoder *d, __u64 cookie, __u64 ts, pt_event_fn fn, void *ctx)
{
	struct pt_event *ev = gentab_get(&d->no_port, cookie), copy;

	if (!ev || (ts && ev->ts_ns != ts))
		return 0;
	copy = *ev;
	gentab_take(&d->no_port, cookie, NULL);
	return emit(d, fn, ctx, &copy);
}

int decoder__tick(struct decoder *d, __u64 now_ns, pt_event_fn fn, void *ctx)
{
	/* UINT64_MAX: "all that is queued", not a time to age by. */
	if (now_ns != UINT64_MAX)
		age(d, now_ns);
	for (;;) {
		const struct pt_event *tw = q_peek(&d->tw), *np = q_peek(&d->no_port_q);
		const struct pt_event *early = d->early.n ? &d->early.ev[0] : NULL;
		__u64 t_tw = tw ? due_of(tw, false) : UINT64_MAX;
		__u64 t_np = np ? due_of(np, true) : UINT64_MAX;
		__u64 t_early = early ? due_of(early, false) : UINT64_MAX;
		struct pt_event ev;
		int err;

		if (np && t_np <= now_ns && t_np <= t_tw && t_np <= t_early) {
			ev = q_pop(&d->no_port_q);
			err = no_port_send(d, ev.sk.cookie, ev.ts_ns, fn, ctx);
		} else if ((tw && t_tw <= now_ns) || (early && t_early <= now_ns)) {
			ev = tw && (!early || t_tw <= t_early) ? q_pop(&d->tw) : heap_pop(&d->early);
			if (gentab_take(&d->tw_gone, ev.sk.cookie, NULL))
				continue;
			err = emit(d, fn, ctx, &ev);
		} else {
			return 0;
		}
		if (err)
			return err;
	}
}

int decoder__end(struct decoder *d, pt_event_fn fn, void *ctx)
{
	while (d->no_port_q.len) {
		struct pt_event ev = q_pop(&d->no_port_q);
		int err = no_port_send(d, ev.sk.cookie, ev.ts_ns, fn, ctx);

		if (err)
			return err;
	}
	return 0;
}

void decoder__keep(struct decoder *d, __u64 cookie)
{
	gentab_get(&d->socks, cookie);
	gentab_get(&d->owners, cookie);
	gentab_get(&d->children, cookie);
}

/*
 * Marked, not looked for: searching the queue (a minute of time-wait
 * sockets) for each one found gone made a check quadratic when the kernel
 * makes none at all (tcp_max_tw_buckets). A mark whose expiry is not queued
 * is never taken: it ages out with the tables.
 */
void decoder__tw_gone(struct decoder *d, __u64 cookie)
{
	__u8 one = 1;

	gentab_put(&d->tw_gone, cookie, &one);
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

	/* A child a reset closed before accept() returned it: its CLOSE,
	 * which ends an owner's entry, has gone by already. */
	if (!(ev->flags & PT_F_GONE))
		gentab_put(&d->owners, ev->sk.cookie, &ev->owner);
	l = holders__listener(d->holders, ev->sk.netns, ev->sk.lport);
	if (!l || l->owner.pid == ev->owner.pid || holder_alive(l, ev->ts_ns))
		return;
	l->owner = ev->owner;
	l->checked_ns = ev->ts_ns;
	gentab_put(&d->owners, l->cookie, &ev->owner);
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
	const struct pt_owner *o = gentab_get(&d->owners, ev->sk.cookie);
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

/*
 * A connect() that reached CLOSE from SYN_SENT without a port found none
 * (inet_hash_connect() failed; KERNEL-NOTES). Its syscall exit, right
 * behind, says why; the alloc-fail it makes lacks the source address, which
 * this transition still has. Without that exit (no tracefs, or lost), the
 * kernel's one reason says it after PT_NO_PORT_WAIT_NS: EADDRNOTAVAIL.
 */
static int no_port_wait(struct decoder *d, const struct pt_event *close)
{
	struct pt_event ev = *close;

	if (!ev.sk.cookie)
		return 0;
	ev.type = PT_EV_PORT;
	ev.kind = PT_PORT_ALLOC_FAIL;
	ev.oldstate = ev.newstate = 0;
	ev.reason = PT_REASON_NONE;
	ev.err = EADDRNOTAVAIL;
	ev.sk.lport = 0;
	ev.flags = (close->flags & PT_F_OWNER_KNOWN) | PT_F_AUTOBIND | PT_F_PORT_PENDING |
		   PT_F_COMPUTED;
	if (!gentab_put(&d->no_port, ev.sk.cookie, &ev))
		return 0;
	return q_push(&d->no_port_q, &ev);
}

/* The syscall exit of a connect() that found no port: it, not a computed
 * one, says so, with the source address the transition had. */
static void no_port_exit(struct decoder *d, struct pt_event *ev)
{
	static const __u8 zero[16];
	struct pt_event wait;

	if (!gentab_take(&d->no_port, ev->sk.cookie, &wait))
		return;
	if (!memcmp(ev->sk.laddr, zero, sizeof(zero)) && ev->sk.family == wait.sk.family)
		memcpy(ev->sk.laddr, wait.sk.laddr, sizeof(ev->sk.laddr));
	if (!(ev->flags & PT_F_OWNER_KNOWN) && (wait.flags & PT_F_OWNER_KNOWN)) {
		ev->owner = wait.owner;
		ev->flags |= PT_F_OWNER_KNOWN;
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
	if (r->oldstate == TCP_CLOSE && r->newstate == TCP_SYN_SENT) {
		/* A connect() again: the one before failed, and no syscall
		 * exit said so (none is traced without tracefs). */
		err = no_port_send(d, r->sk.cookie, 0, fn, ctx);
		if (err)
			return err;
	}
	if (r->oldstate == TCP_LISTEN && r->newstate == TCP_SYN_RECV)
		gentab_put(&d->children, r->sk.cookie, &one);
	/* A child of a listener older than tracing, which the kernel could
	 * not mark. */
	if (gentab_get(&d->children, r->sk.cookie))
		flags |= PT_F_ACCEPTED;
	if ((flags & PT_F_OWNER_KNOWN) &&
	    ((r->oldstate == TCP_CLOSE &&
	      (r->newstate == TCP_SYN_SENT || r->newstate == TCP_LISTEN)) ||
	     (r->oldstate == TCP_LISTEN && r->newstate == TCP_CLOSE))) {
		/* The caller of connect(), listen() or a listener's close()
		 * names itself; listeners keep theirs in socket storage. */
		if (r->newstate == TCP_SYN_SENT)
			gentab_put(&d->owners, r->sk.cookie, &ev.owner);
		else
			gentab_take(&d->owners, r->sk.cookie, NULL);
	} else {
		owner_of(d, &ev, &flags);
	}
	if (r->newstate == TCP_CLOSE) {
		/* A port bind() pinned stays, and so does its owner, until
		 * the release that sock_release sends. */
		if ((flags & (PT_F_RELEASE | PT_F_TIMEWAIT | PT_F_ACCEPTED)) ||
		    !(r->opts & PT_OPT_BOUND_PORT))
			gentab_take(&d->owners, r->sk.cookie, NULL);
		/* A child's port is its listener's: only a time-wait socket
		 * it leaves holds it on. */
		if (gentab_take(&d->children, r->sk.cookie, NULL))
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
	if (r->oldstate == TCP_SYN_SENT && r->newstate == TCP_CLOSE && !pt_event_port_known(&ev) &&
	    !(flags & (PT_F_RELEASE | PT_F_TIMEWAIT))) {
		err = no_port_wait(d, &ev);
		if (err)
			return err;
	}

	ev.type = PT_EV_PORT;
	ev.flags &= ~(PT_F_RELEASE | PT_F_TIMEWAIT);
	if (flags & (PT_F_RELEASE | PT_F_TIMEWAIT)) {
		/* bind(addr, 0) then connect(): given back at CLOSE. */
		gentab_take(&d->socks, r->sk.cookie, NULL);
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
		return q_push(&d->tw, &ev);
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

	if (r->kind == PT_PORT_ALLOC_FAIL && r->sk.proto == IPPROTO_TCP)
		no_port_exit(d, &ev);
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
		struct sock_seen *had = gentab_get(&d->socks, ev.sk.cookie);

		if (had) {
			memcpy(had->sk.laddr, ev.sk.laddr, sizeof(had->sk.laddr));
			memcpy(had->sk.raddr, ev.sk.raddr, sizeof(had->sk.raddr));
			had->sk.rport = ev.sk.rport;
		}
	}
	if (held_until_release(r) && ev.sk.lport) {
		struct sock_seen seen = {.sk = ev.sk, .owner = ev.owner};
		struct sock_seen *had = gentab_get(&d->socks, ev.sk.cookie);

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
		gentab_put(&d->socks, ev.sk.cookie, &seen);
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
		if (gentab_take(&d->owners, r->sk.cookie, &o)) {
			ev.owner = o;
			ev.flags |= PT_F_OWNER_KNOWN;
		}
		if (gentab_take(&d->socks, r->sk.cookie, &e)) {
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
		gentab_put(&d->socks, ev->sk.cookie, &seen);
	/* Its later records run in softirq or sock_release: the owner /proc
	 * named goes with them. */
	if (ev->sk.proto == IPPROTO_TCP && (ev->flags & PT_F_OWNER_KNOWN))
		gentab_put(&d->owners, ev->sk.cookie, &ev->owner);
	/* No event will ever say when a time-wait socket goes: the kernel
	 * said how long it has left. */
	if (ev->sk.proto == IPPROTO_TCP && ev->latency_ns && ev->sk.lport) {
		struct pt_event end = {
			.type = PT_EV_PORT,
			.cpu = ev->cpu,
			.ts_ns = ev->ts_ns + ev->latency_ns,
			.sk = ev->sk,
			.kind = PT_PORT_RELEASE,
			.reason = PT_REASON_TW_EXPIRED,
			.flags = PT_F_COMPUTED | (ev->flags & PT_F_RESERVED),
		};

		heap_push(&d->early, &end);
	}
}

bool decoder__prebound(const struct pt_event *ev)
{
	return ev->sk.proto == IPPROTO_TCP && ev->kind == PT_PORT_EXISTING &&
	       ev->newstate == TCP_CLOSE && ev->sk.lport && !ev->latency_ns;
}

void decoder__hold(struct decoder *d)
{
	d->kept.on = true;
}

bool decoder__holding(const struct decoder *d)
{
	return d->kept.on;
}

/* A kept record's room: its length, then itself padded to 8 bytes. */
static size_t kept_size(size_t len)
{
	return sizeof(__u64) + ((len + 7) & ~(size_t)7);
}

/* Keep a record for decoder__release(); false when there is no room. */
static bool keep(struct decoder *d, const void *data, size_t len)
{
	size_t need = kept_size(len);
	unsigned char *buf = array__grow(d->kept.buf, &d->kept.cap, d->kept.len + need, 1);
	__u64 n = len;

	if (!buf)
		return false;
	d->kept.buf = buf;
	memcpy(buf + d->kept.len, &n, sizeof(n));
	memcpy(buf + d->kept.len + sizeof(n), data, len);
	d->kept.len += need;
	return true;
}

static int decode(struct decoder *d, const void *data, size_t len, pt_event_fn fn, void *ctx);

int decoder__release(struct decoder *d, size_t max, pt_event_fn fn, void *ctx)
{
	int err = 0;

	while (!err && max-- && d->kept.off < d->kept.len) {
		__u64 n;

		memcpy(&n, d->kept.buf + d->kept.off, sizeof(n));
		err = decode(d, d->kept.buf + d->kept.off + sizeof(n), n, fn, ctx);
		d->kept.off += kept_size(n);
	}
	if (d->kept.off == d->kept.len) {
		free(d->kept.buf);
		d->kept.buf = NULL;
		d->kept.off = d->kept.len = d->kept.cap = 0;
		d->kept.on = false;
	}
	return err;
}

int decoder__record(struct decoder *d, const void *data, size_t len, pt_event_fn fn, void *ctx)
{
	/* One that cannot be kept (out of memory) is decoded now, out of
	 * order, rather than lost. */
	if (d->kept.on && keep(d, data, len))
		return 0;
	return decode(d, data, len, fn, ctx);
}

static int decode(struct decoder *d, const void *data, size_t len, pt_event_fn fn, void *ctx)
{
	const struct pt_hdr *h = data;

	if (len < sizeof(*h) || h->size > len) {
		d->bad++;
		return 0;
	}
	age(d, h->ts_ns);
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
