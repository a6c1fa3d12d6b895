// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include "array.h"
#include "decoder.h"
#include "holders.h"
#include "socktab.h"

#define MAX_ENTRIES (1u << 22)

enum role {
	R_LISTEN,
	R_CONN,
	R_BOUND,
	R_TW,
	R_ROLES,
};

/* What one socket counts for, by cookie. */
struct hsock {
	__u64 key;
	__u64 tw_end;
	__u8 role;
};

/* One port of one namespace and protocol. */
struct hport {
	__u32 n[R_ROLES];
	__u64 tw_end;		/* the latest end of a time-wait socket on it */
	struct holders_listener lis;	/* cookie 0: none */
};

/* Time-wait sockets by end, a min-heap: those of the start-up snapshot end
 * when the kernel said, so arrival order is not end order. */
struct tw_due {
	__u64 end;
	__u64 cookie;
};

struct holders {
	struct socktab *socks;	/* cookie -> struct hsock */
	struct socktab *ports;	/* port key -> struct hport */
	struct tw_due *due;
	size_t ndue, cap_due;
};

struct holders *holders__new(void)
{
	struct holders *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->socks = socktab__new(MAX_ENTRIES, sizeof(struct hsock));
	h->ports = socktab__new(MAX_ENTRIES, sizeof(struct hport));
	if (!h->socks || !h->ports) {
		holders__free(h);
		return NULL;
	}
	return h;
}

void holders__free(struct holders *h)
{
	if (!h)
		return;
	socktab__free(h->socks);
	socktab__free(h->ports);
	free(h->due);
	free(h);
}

/* Never 0: the protocol number is in it. */
static __u64 port_key(__u32 netns, __u8 proto, __u16 port)
{
	return (__u64)netns << 24 | (__u64)proto << 16 | port;
}

static void due_push(struct holders *h, __u64 end, __u64 cookie)
{
	struct tw_due *v = array__grow(h->due, &h->cap_due, h->ndue + 1, sizeof(*v));
	size_t i;

	if (!v)
		return;		/* its end then comes with its release event */
	h->due = v;
	for (i = h->ndue++; i && v[(i - 1) / 2].end > end; i = (i - 1) / 2)
		v[i] = v[(i - 1) / 2];
	v[i] = (struct tw_due){end, cookie};
}

static struct tw_due due_pop(struct holders *h)
{
	struct tw_due *v = h->due, top = v[0], last = v[--h->ndue];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->ndue)
			break;
		if (c + 1 < h->ndue && v[c + 1].end < v[c].end)
			c++;
		if (last.end <= v[c].end)
			break;
		v[i] = v[c];
		i = c;
	}
	if (h->ndue)
		v[i] = last;
	return top;
}

static void uncount(struct holders *h, __u64 cookie, const struct hsock *s)
{
	struct hport *p = socktab__get(h->ports, s->key);

	if (!p)
		return;
	if (p->n[s->role])
		p->n[s->role]--;
	if (s->role == R_LISTEN && p->lis.cookie == cookie)
		memset(&p->lis, 0, sizeof(p->lis));
	if (!p->n[R_TW])
		p->tw_end = 0;
	for (int r = 0; r < R_ROLES; r++)
		if (p->n[r])
			return;
	socktab__take(h->ports, s->key, NULL);
}

void holders__forget(struct holders *h, __u64 cookie)
{
	struct hsock s;

	if (socktab__take(h->socks, cookie, &s))
		uncount(h, cookie, &s);
}

static void expire(struct holders *h, __u64 now)
{
	while (h->ndue && h->due[0].end <= now) {
		struct tw_due d = due_pop(h);
		struct hsock *s = socktab__get(h->socks, d.cookie);

		if (s && s->role == R_TW && s->tw_end == d.end)
			holders__forget(h, d.cookie);
	}
}

static void set_role(struct holders *h, const struct pt_event *ev, enum role role, __u64 tw_end)
{
	__u64 cookie = ev->sk.cookie, key;
	struct hsock *had, s;
	struct hport *p, fresh = {};

	if (!cookie || !pt_event_port_known(ev))
		return;
	key = port_key(ev->sk.netns, ev->sk.proto, ev->sk.lport);
	had = socktab__get(h->socks, cookie);
	if (!had || had->key != key || had->role != role || role == R_TW) {
		if (had)
			holders__forget(h, cookie);
		p = socktab__get(h->ports, key);
		if (!p) {
			if (!socktab__put(h->ports, key, &fresh))
				return;
			p = socktab__get(h->ports, key);
		}
		s = (struct hsock){.key = key, .tw_end = tw_end, .role = role};
		if (!socktab__put(h->socks, cookie, &s)) {
			/* Full: count nothing rather than what cannot be undone. */
			if (!p->n[R_LISTEN] && !p->n[R_CONN] && !p->n[R_BOUND] && !p->n[R_TW])
				socktab__take(h->ports, key, NULL);
			return;
		}
		p->n[role]++;
		if (role == R_TW) {
			if (tw_end > p->tw_end)
				p->tw_end = tw_end;
			due_push(h, tw_end, cookie);
		}
	} else {
		p = socktab__get(h->ports, key);
		if (!p)
			return;
	}
	if (role == R_LISTEN && (!p->lis.cookie || p->lis.cookie == cookie)) {
		p->lis.cookie = cookie;
		/* Whether its holder lives is asked when another process
		 * accepts from it. */
		if ((ev->flags & PT_F_OWNER_KNOWN) && !p->lis.owner.pid)
			p->lis.owner = ev->owner;
	}
}

/* A socket of the start-up snapshot, by the state the table showed. */
static void existing(struct holders *h, const struct pt_event *ev)
{
	if (ev->sk.proto == IPPROTO_UDP) {
		set_role(h, ev, ev->sk.rport ? R_CONN : R_LISTEN, 0);
		return;
	}
	/* sockdiag gives a time-wait socket the time it has left (an orphan
	 * in FIN_WAIT2 that the kernel folded into one too). */
	if (ev->newstate == TCP_TIME_WAIT || ev->latency_ns) {
		set_role(h, ev, R_TW, ev->ts_ns + ev->latency_ns);
		return;
	}
	switch (ev->newstate) {
	case TCP_LISTEN:
		set_role(h, ev, R_LISTEN, 0);
		break;
	case TCP_CLOSE:
		set_role(h, ev, R_BOUND, 0);
		break;
	case TCP_SYN_RECV:
	case TCP_NEW_SYN_RECV:
		break;		/* a request, not yet a socket of its own */
	default:
		set_role(h, ev, R_CONN, 0);
		break;
	}
}

void holders__event(struct holders *h, const struct pt_event *ev)
{
	/* Time moves with the events: what ended by now goes, so that the
	 * heap and the tables hold only what is live. */
	expire(h, ev->ts_ns);
	if (ev->type == PT_EV_STATE) {
		if (ev->newstate == TCP_LISTEN)
			set_role(h, ev, R_LISTEN, 0);
		else if (ev->newstate != TCP_CLOSE)
			set_role(h, ev, R_CONN, 0);
		/* At CLOSE the port event that follows says what became of
		 * the port; without one, a port bind() pinned stays with the
		 * socket until its release, and any other is gone. */
		else if (!(ev->flags & (PT_F_RELEASE | PT_F_TIMEWAIT))) {
			if ((ev->opts & PT_OPT_BOUND_PORT) && !(ev->flags & PT_F_ACCEPTED))
				set_role(h, ev, R_BOUND, 0);
			else
				holders__forget(h, ev->sk.cookie);
		}
		return;
	}
	if (ev->type != PT_EV_PORT)
		return;
	switch (ev->kind) {
	case PT_PORT_TIMEWAIT:
		set_role(h, ev, R_TW, ev->ts_ns + PT_TIMEWAIT_NS);
		break;
	case PT_PORT_RELEASE:
		holders__forget(h, ev->sk.cookie);
		break;
	case PT_PORT_LISTEN:
		set_role(h, ev, R_LISTEN, 0);
		break;
	case PT_PORT_BIND:
		if (!socktab__get(h->socks, ev->sk.cookie))
			set_role(h, ev, R_BOUND, 0);
		break;
	case PT_PORT_ALLOC:
		set_role(h, ev, ev->sk.rport ? R_CONN : R_BOUND, 0);
		break;
	case PT_PORT_EXISTING:
		existing(h, ev);
		break;
	default:
		break;
	}
}

bool holders__lookup(struct holders *h, __u32 netns, __u8 proto, __u16 port, __u64 now_ns,
		     struct pt_held *out)
{
	const struct hport *p;

	expire(h, now_ns);
	p = socktab__get(h->ports, port_key(netns, proto, port));
	memset(out, 0, sizeof(*out));
	if (!p)
		return false;
	out->listeners = p->n[R_LISTEN];
	out->connections = p->n[R_CONN];
	out->bound = p->n[R_BOUND];
	out->time_wait = p->n[R_TW];
	out->tw_end_ns = p->tw_end;
	out->listener = p->lis.owner;
	return true;
}

struct holders_listener *holders__listener(struct holders *h, __u32 netns, __u16 port)
{
	struct hport *p = socktab__get(h->ports, port_key(netns, IPPROTO_TCP, port));

	return p && p->lis.cookie ? &p->lis : NULL;
}
