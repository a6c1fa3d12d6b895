// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include "check.h"
#include "decoder.h"
#include "fixtures.h"

static struct pt_owner client(void)
{
	return owner_of(100, 5000, "client");
}

static void state_with_release_unfolds(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_state r = rec_state(10, client(), sock4(7, IPPROTO_TCP, "127.0.0.1", 40001,
								   "127.0.0.1", 80),
					  TCP_ESTABLISHED, TCP_CLOSE, PT_F_RELEASE);

	r.reason = PT_REASON_RST_SENT;
	decoder__record(d, &r, sizeof(r), collect_event, &c);
	CHECK(c.n == 2);
	CHECK(c.ev[0].type == PT_EV_STATE && c.ev[0].newstate == TCP_CLOSE);
	CHECK(c.ev[1].type == PT_EV_PORT && c.ev[1].kind == PT_PORT_RELEASE);
	CHECK(c.ev[1].reason == PT_REASON_RST_SENT && c.ev[1].sk.lport == 40001);
	CHECK(!(c.ev[1].flags & PT_F_RELEASE));
	decoder__free(d);
}

static void timewait_expires_computed(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_state r = rec_state(1000, client(), sock4(8, IPPROTO_TCP, "127.0.0.1", 40002,
								     "127.0.0.1", 80),
					  TCP_FIN_WAIT2, TCP_CLOSE, PT_F_TIMEWAIT);

	decoder__record(d, &r, sizeof(r), collect_event, &c);
	CHECK(c.n == 2 && c.ev[1].kind == PT_PORT_TIMEWAIT);
	decoder__tick(d, 1000 + PT_TIMEWAIT_NS - 1, collect_event, &c);
	CHECK(c.n == 2);
	decoder__tick(d, 1000 + PT_TIMEWAIT_NS, collect_event, &c);
	CHECK(c.n == 3);
	CHECK(c.ev[2].kind == PT_PORT_RELEASE && c.ev[2].reason == PT_REASON_TW_EXPIRED);
	CHECK(c.ev[2].ts_ns == 1000 + PT_TIMEWAIT_NS && (c.ev[2].flags & PT_F_COMPUTED));
	CHECK(c.ev[2].owner.pid == 100);
	decoder__free(d);
}

/* A check found the time-wait socket gone: its expiry is dropped, the
 * others' still come. */
static void timewait_gone_drops_its_expiry(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_state a = rec_state(1000, client(), sock4(8, IPPROTO_TCP, "127.0.0.1", 40002,
								     "127.0.0.1", 80),
					  TCP_FIN_WAIT2, TCP_CLOSE, PT_F_TIMEWAIT);
	struct pt_rec_state b = rec_state(2000, client(), sock4(9, IPPROTO_TCP, "127.0.0.1", 40003,
								     "127.0.0.1", 80),
					  TCP_FIN_WAIT2, TCP_CLOSE, PT_F_TIMEWAIT);

	decoder__record(d, &a, sizeof(a), collect_event, &c);
	decoder__record(d, &b, sizeof(b), collect_event, &c);
	CHECK(c.n == 4);
	decoder__tw_gone(d, 8);
	decoder__tw_gone(d, 77);	/* no such time-wait socket: nothing */
	decoder__tick(d, 2000 + PT_TIMEWAIT_NS, collect_event, &c);
	CHECK(c.n == 5);
	CHECK(c.ev[4].kind == PT_PORT_RELEASE && c.ev[4].sk.cookie == 9);
	decoder__free(d);
}

static void listen_is_derived(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_state r = rec_state(5, client(), sock4(9, IPPROTO_TCP, "0.0.0.0", 8080,
								  "0.0.0.0", 0),
					  TCP_CLOSE, TCP_LISTEN, 0);

	decoder__record(d, &r, sizeof(r), collect_event, &c);
	CHECK(c.n == 2 && c.ev[1].kind == PT_PORT_LISTEN && c.ev[1].sk.lport == 8080);
	decoder__free(d);
}

static void sizes_and_types_checked(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_state r = rec_state(5, client(), sock4(9, IPPROTO_TCP, "0.0.0.0", 1, "0.0.0.0", 0),
					  TCP_CLOSE, TCP_SYN_SENT, 0);
	struct pt_rec_port p = rec_port(6, client(), r.sk, PT_PORT_KIND_MAX, 0);

	decoder__record(d, &r, 3, collect_event, &c);		/* shorter than a header */
	decoder__record(d, &r, sizeof(r) - 1, collect_event, &c);	/* size says more */
	r.hdr.size = sizeof(r) - 8;
	decoder__record(d, &r, sizeof(r), collect_event, &c);	/* wrong size for type */
	r.hdr.size = sizeof(r);
	r.hdr.type = 99;
	decoder__record(d, &r, sizeof(r), collect_event, &c);	/* unknown type */
	decoder__record(d, &p, sizeof(p), collect_event, &c);	/* kind out of range */
	CHECK(c.n == 0);
	CHECK(decoder__bad_records(d) == 5);
	decoder__free(d);
}

static void udp_release_completed_from_alloc(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_sock sk = sock4(11, IPPROTO_UDP, "0.0.0.0", 40003, "127.0.0.1", 53);
	struct pt_rec_port alloc = rec_port(1, client(), sk, PT_PORT_ALLOC, 0);
	struct pt_rec_port rel = rec_port(2, client(), (struct pt_sock){.cookie = 11}, PT_PORT_RELEASE, 0);
	struct pt_rec_port stray = rec_port(3, client(), (struct pt_sock){.cookie = 12}, PT_PORT_RELEASE, 0);

	rel.reason = PT_REASON_EXIT;
	rel.sk.proto = IPPROTO_UDP;
	decoder__record(d, &alloc, sizeof(alloc), collect_event, &c);
	decoder__record(d, &rel, sizeof(rel), collect_event, &c);
	/* A socket that never held a port gives nothing back. */
	decoder__record(d, &stray, sizeof(stray), collect_event, &c);
	CHECK(c.n == 2);
	CHECK(c.ev[1].kind == PT_PORT_RELEASE && c.ev[1].sk.lport == 40003);
	CHECK(c.ev[1].sk.rport == 53 && c.ev[1].reason == PT_REASON_EXIT);
	decoder__free(d);
}

static void child_birth_unfolds_first(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_state r = rec_state(50, owner_of(200, 1, "server"),
					  sock4(21, IPPROTO_TCP, "127.0.0.1", 8080, "127.0.0.1", 40001),
					  TCP_SYN_RECV, TCP_ESTABLISHED, PT_F_FOLDED_SYNRECV);

	r.folded_ns = 45;
	decoder__record(d, &r, sizeof(r), collect_event, &c);
	CHECK(c.n == 2);
	CHECK(c.ev[0].ts_ns == 45 && c.ev[0].oldstate == TCP_LISTEN && c.ev[0].newstate == TCP_SYN_RECV);
	CHECK(c.ev[0].sk.rport == 40001 && c.ev[0].owner.pid == 200);
	CHECK(c.ev[1].ts_ns == 50 && c.ev[1].newstate == TCP_ESTABLISHED);
	CHECK(!(c.ev[0].flags & PT_F_FOLDED_SYNRECV) && !(c.ev[1].flags & PT_F_FOLDED_SYNRECV));
	decoder__free(d);
}

/* A child of a listener older than tracing comes with its own LISTEN ->
 * SYN_RECV, and the kernel, keeping nothing for it, cannot tell that its
 * CLOSE gives no port back: the decoder does, for that cookie only. */
static void unfolded_child_releases_nothing(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_owner nobody = {};
	struct pt_sock child = sock4(22, IPPROTO_TCP, "127.0.0.1", 40100, "127.0.0.1", 40001);
	struct pt_sock other = sock4(23, IPPROTO_TCP, "127.0.0.1", 40002, "127.0.0.1", 9000);
	struct pt_rec_state born = rec_state(10, nobody, child, TCP_LISTEN, TCP_SYN_RECV, 0);
	struct pt_rec_state est = rec_state(11, nobody, child, TCP_SYN_RECV, TCP_ESTABLISHED, 0);
	struct pt_rec_state end = rec_state(20, nobody, child, TCP_ESTABLISHED, TCP_CLOSE,
					    PT_F_RELEASE);
	struct pt_rec_state again = rec_state(30, nobody, child, TCP_ESTABLISHED, TCP_CLOSE,
					      PT_F_RELEASE);
	struct pt_rec_state client_end = rec_state(40, nobody, other, TCP_ESTABLISHED, TCP_CLOSE,
						   PT_F_RELEASE);

	decoder__record(d, &born, sizeof(born), collect_event, &c);
	decoder__record(d, &est, sizeof(est), collect_event, &c);
	decoder__record(d, &end, sizeof(end), collect_event, &c);
	CHECK(c.n == 3);
	CHECK(c.ev[0].oldstate == TCP_LISTEN && c.ev[0].newstate == TCP_SYN_RECV);
	CHECK(c.ev[2].type == PT_EV_STATE && c.ev[2].newstate == TCP_CLOSE);
	CHECK(!(c.ev[2].flags & (PT_F_RELEASE | PT_F_TIMEWAIT)));
	/* Forgotten at its CLOSE: a cookie seen again is not taken for it. */
	decoder__record(d, &again, sizeof(again), collect_event, &c);
	decoder__record(d, &client_end, sizeof(client_end), collect_event, &c);
	CHECK(c.n == 7);
	CHECK(c.ev[4].type == PT_EV_PORT && c.ev[4].kind == PT_PORT_RELEASE && c.ev[4].sk.cookie == 22);
	CHECK(c.ev[6].type == PT_EV_PORT && c.ev[6].kind == PT_PORT_RELEASE && c.ev[6].sk.cookie == 23);
	decoder__free(d);
}

static void udp_bind_listens(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_port b = rec_port(1, client(), sock4(31, IPPROTO_UDP, "0.0.0.0", 5353,
							 "0.0.0.0", 0), PT_PORT_BIND, 0);

	b.req_port = 5353;
	decoder__record(d, &b, sizeof(b), collect_event, &c);
	CHECK(c.n == 2 && c.ev[0].kind == PT_PORT_BIND && c.ev[1].kind == PT_PORT_LISTEN);
	CHECK(c.ev[1].sk.lport == 5353 && c.ev[1].sk.proto == IPPROTO_UDP);
	decoder__free(d);
}

/* A UDP socket takes a new port only when it has none: the one it held
 * went back by a disconnect, told before the new one. A TCP socket's
 * later bind is no such sign. */
static void udp_new_port_releases_the_old(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_port a = rec_port(1, client(), sock4(41, IPPROTO_UDP, "127.0.0.1", 40010,
							 "127.0.0.1", 53), PT_PORT_ALLOC, 0);
	struct pt_rec_port b = rec_port(9, client(), sock4(41, IPPROTO_UDP, "127.0.0.1", 40011,
							 "127.0.0.1", 54), PT_PORT_ALLOC, 0);
	struct pt_rec_port t = rec_port(10, client(), sock4(42, IPPROTO_TCP, "127.0.0.1", 40012,
							  "0.0.0.0", 0), PT_PORT_BIND, 0);

	decoder__record(d, &a, sizeof(a), collect_event, &c);
	decoder__record(d, &b, sizeof(b), collect_event, &c);
	CHECK(c.n == 3);
	CHECK(c.ev[1].kind == PT_PORT_RELEASE && c.ev[1].reason == PT_REASON_DISCONNECT);
	CHECK(c.ev[1].sk.lport == 40010 && c.ev[1].sk.rport == 53 && c.ev[1].sk.cookie == 41);
	CHECK(c.ev[1].ts_ns == 9 && (c.ev[1].flags & PT_F_COMPUTED));
	CHECK(c.ev[1].owner.pid == 100 && (c.ev[1].flags & PT_F_OWNER_KNOWN));
	CHECK(c.ev[2].kind == PT_PORT_ALLOC && c.ev[2].sk.lport == 40011);
	decoder__record(d, &t, sizeof(t), collect_event, &c);
	decoder__record(d, &t, sizeof(t), collect_event, &c);
	CHECK(c.n == 5 && c.ev[3].kind == PT_PORT_BIND && c.ev[4].kind == PT_PORT_BIND);
	decoder__free(d);
}

/* connect() on socket c to 127.0.0.1:80 that finds no port, at t. */
static void no_port_connect(struct decoder *d, struct collect *c, __u64 cookie, __u64 t)
{
	struct pt_sock sk = sock4(cookie, IPPROTO_TCP, "127.0.0.2", 0, "127.0.0.1", 80);
	struct pt_rec_state a = rec_state(t, client(), sk, TCP_CLOSE, TCP_SYN_SENT, PT_F_PORT_PENDING);
	struct pt_rec_state b = rec_state(t + 5, client(), sk, TCP_SYN_SENT, TCP_CLOSE,
					  PT_F_PORT_PENDING);

	b.reason = PT_REASON_NO_PORT;
	b.flags &= ~PT_F_OWNER_KNOWN;	/* as the kernel has it at CLOSE */
	decoder__record(d, &a, sizeof(a), collect_event, c);
	decoder__record(d, &b, sizeof(b), collect_event, c);
}

static int count_kind(const struct collect *c, __u8 kind, __u32 flags)
{
	int n = 0;

	for (int i = 0; i < c->n; i++)
		n += c->ev[i].type == PT_EV_PORT && c->ev[i].kind == kind &&
		     (c->ev[i].flags & flags) == flags;
	return n;
}

/* The alloc-fail of a connect() that found no port is made once: the
 * syscall's own (completed with the source address the transition had),
 * or, when none comes, one computed after the wait, at the next connect()
 * of the socket, or at the end of the stream. */
static void no_port_fails_once(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_port f = rec_port(20, client(), sock4(1, IPPROTO_TCP, "0.0.0.0", 0, "127.0.0.1",
							 80), PT_PORT_ALLOC_FAIL, EADDRNOTAVAIL);

	f.flags |= PT_F_PORT_PENDING | PT_F_AUTOBIND;
	no_port_connect(d, &c, 1, 10);
	decoder__record(d, &f, sizeof(f), collect_event, &c);
	decoder__tick(d, 10 + 2 * PT_NO_PORT_WAIT_NS, collect_event, &c);
	CHECK(count_kind(&c, PT_PORT_ALLOC_FAIL, 0) == 1 && c.n == 3);
	CHECK(c.ev[2].sk.laddr[0] == 127 && c.ev[2].sk.laddr[3] == 2);
	CHECK(!(c.ev[2].flags & PT_F_COMPUTED));

	/* No syscall exit: computed once the wait is over, at the CLOSE's time. */
	c.n = 0;
	no_port_connect(d, &c, 2, 3 * PT_NO_PORT_WAIT_NS);
	decoder__tick(d, 4 * PT_NO_PORT_WAIT_NS, collect_event, &c);
	CHECK(c.n == 2);
	decoder__tick(d, 4 * PT_NO_PORT_WAIT_NS + 5, collect_event, &c);
	CHECK(c.n == 3 && count_kind(&c, PT_PORT_ALLOC_FAIL, PT_F_COMPUTED) == 1);
	CHECK(c.ev[2].err == EADDRNOTAVAIL && c.ev[2].ts_ns == 3 * PT_NO_PORT_WAIT_NS + 5);
	CHECK(c.ev[2].owner.pid == 100 && (c.ev[2].flags & PT_F_OWNER_KNOWN));
	decoder__tick(d, 9 * PT_NO_PORT_WAIT_NS, collect_event, &c);
	CHECK(c.n == 3);

	/* The socket connect()s again at once: the first attempt failed. */
	c.n = 0;
	no_port_connect(d, &c, 3, 10 * PT_NO_PORT_WAIT_NS);
	no_port_connect(d, &c, 3, 10 * PT_NO_PORT_WAIT_NS + 100);
	CHECK(c.n == 5 && c.ev[2].kind == PT_PORT_ALLOC_FAIL && c.ev[3].newstate == TCP_SYN_SENT);
	/* The stream ends: the second one failed too, once. */
	decoder__end(d, collect_event, &c);
	decoder__tick(d, UINT64_MAX, collect_event, &c);
	CHECK(c.n == 6 && count_kind(&c, PT_PORT_ALLOC_FAIL, PT_F_COMPUTED) == 2);
	decoder__free(d);
}

/* A time-wait socket found at start-up ends when the kernel said it would,
 * unless a check found it gone first. */
static void startup_time_wait_ends_computed(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_event a = ev_port(1000, (struct pt_owner){}, sock4(5, IPPROTO_TCP, "127.0.0.1", 40001,
								   "127.0.0.1", 80),
				    PT_PORT_EXISTING, 0);
	struct pt_event b = a;

	a.flags = b.flags = 0;
	a.latency_ns = 30 * 1000000000ULL;
	b.sk.cookie = 6;
	b.latency_ns = 10 * 1000000000ULL;
	decoder__remember(d, &a);
	decoder__remember(d, &b);
	decoder__tw_gone(d, 6);
	decoder__tick(d, 1000 + 30 * 1000000000ULL - 1, collect_event, &c);
	CHECK(c.n == 0);
	decoder__tick(d, 1000 + 30 * 1000000000ULL, collect_event, &c);
	CHECK(c.n == 1 && c.ev[0].kind == PT_PORT_RELEASE && c.ev[0].sk.cookie == 5);
	CHECK(c.ev[0].reason == PT_REASON_TW_EXPIRED && (c.ev[0].flags & PT_F_COMPUTED));
	CHECK(c.ev[0].ts_ns == 1000 + 30 * 1000000000ULL && c.ev[0].sk.lport == 40001);
	decoder__free(d);
}

/* Entries whose closing record never came are forgotten after two ages,
 * and counted; one the kernel still has is kept. */
static void tables_age(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_port a = rec_port(1, client(), sock4(50, IPPROTO_UDP, "127.0.0.1", 40010,
							 "127.0.0.1", 53), PT_PORT_ALLOC, 0);
	struct pt_rec_port b = rec_port(2, client(), sock4(51, IPPROTO_UDP, "127.0.0.1", 40011,
							 "127.0.0.1", 53), PT_PORT_ALLOC, 0);
	struct pt_rec_port rel = rec_port(0, client(), sock4(51, IPPROTO_UDP, "0.0.0.0", 0,
							   "0.0.0.0", 0), PT_PORT_RELEASE, 0);

	decoder__record(d, &a, sizeof(a), collect_event, &c);
	decoder__record(d, &b, sizeof(b), collect_event, &c);
	CHECK(decoder__entries(d) == 2);
	decoder__tick(d, 1 + PT_DECODER_AGE_NS, collect_event, &c);
	/* The kernel still has 51 (a dump said so): kept. */
	decoder__keep(d, 51);
	decoder__tick(d, 2 + 2 * PT_DECODER_AGE_NS, collect_event, &c);
	CHECK(decoder__aged(d) == 1 && decoder__entries(d) == 1);
	c.n = 0;
	rel.hdr.ts_ns = 3 + 2 * PT_DECODER_AGE_NS;
	decoder__record(d, &rel, sizeof(rel), collect_event, &c);
	CHECK(c.n == 1 && c.ev[0].sk.lport == 40011);
	decoder__free(d);
}

/* What the decoder said a failed bind() ran into, copied while valid. */
struct held_seen {
	struct collect c;
	struct pt_held held;
	int n;
};

static int collect_held(void *ctx, const struct pt_event *ev)
{
	struct held_seen *h = ctx;

	if ((ev->flags & PT_F_HELD) && ev->held) {
		h->held = *ev->held;
		h->n++;
	}
	return collect_event(&h->c, ev);
}

/*
 * A pre-fork server: the listener's listen() caller is gone (no such pid),
 * a worker accepts. The worker owns the connection from accept() on, holds
 * the listener from then, and a bind() of the port hears of both and of the
 * time-wait socket the connection left when the worker closed first.
 */
static void accept_names_the_owner_and_bind_fail_says_what_held(void)
{
	struct decoder *d = decoder__new();
	struct held_seen h = {};
	struct pt_owner gone = owner_of(0x7ffffff0, 1, "nginx"), worker = owner_of(300, 2, "nginx");
	struct pt_sock lsk = sock4(50, IPPROTO_TCP, "127.0.0.1", 80, "0.0.0.0", 0);
	struct pt_sock csk = sock4(51, IPPROTO_TCP, "127.0.0.1", 80, "127.0.0.1", 41000);
	struct pt_rec_state listen = rec_state(10, gone, lsk, TCP_CLOSE, TCP_LISTEN, 0);
	struct pt_rec_state est = rec_state(20, gone, csk, TCP_SYN_RECV, TCP_ESTABLISHED,
					    PT_F_ACCEPTED);
	struct pt_rec_port acc = rec_port(30, worker, csk, PT_PORT_ACCEPT, 0);
	struct pt_rec_state fin = rec_state(40, gone, csk, TCP_ESTABLISHED, TCP_FIN_WAIT1,
					    PT_F_ACCEPTED);
	struct pt_rec_state tw = rec_state(50, gone, csk, TCP_FIN_WAIT2, TCP_CLOSE,
					   PT_F_ACCEPTED | PT_F_TIMEWAIT);
	struct pt_rec_port fail = rec_port(60, owner_of(400, 3, "restart"),
					   sock4(52, IPPROTO_TCP, "127.0.0.1", 80, "0.0.0.0", 0),
					   PT_PORT_BIND_FAIL, EADDRINUSE);

	fail.req_port = 80;
	decoder__record(d, &listen, sizeof(listen), collect_held, &h);
	decoder__record(d, &est, sizeof(est), collect_held, &h);
	decoder__record(d, &acc, sizeof(acc), collect_held, &h);
	decoder__record(d, &fin, sizeof(fin), collect_held, &h);
	decoder__record(d, &tw, sizeof(tw), collect_held, &h);
	CHECK(h.c.n == 7);
	/* Before any accept(), only the listen() caller is known. */
	CHECK(h.c.ev[2].newstate == TCP_ESTABLISHED && h.c.ev[2].owner.pid == 0x7ffffff0);
	CHECK(h.c.ev[3].kind == PT_PORT_ACCEPT && h.c.ev[3].owner.pid == 300);
	CHECK(h.c.ev[4].newstate == TCP_FIN_WAIT1 && h.c.ev[4].owner.pid == 300);
	CHECK(h.c.ev[5].newstate == TCP_CLOSE && h.c.ev[5].owner.pid == 300);
	CHECK(h.c.ev[6].kind == PT_PORT_TIMEWAIT && h.c.ev[6].owner.pid == 300);
	CHECK(h.c.ev[6].flags & PT_F_ACCEPTED);
	decoder__record(d, &fail, sizeof(fail), collect_held, &h);
	CHECK(h.n == 1 && h.c.n == 8 && h.c.ev[7].kind == PT_PORT_BIND_FAIL);
	CHECK(h.held.listeners == 1 && h.held.listener.pid == 300);
	CHECK(h.held.time_wait == 1 && h.held.tw_end_ns == 50 + PT_TIMEWAIT_NS);
	CHECK(h.held.connections == 0 && h.held.bound == 0);
	/* A connection queued after that names the listener's new holder. */
	est.sk.cookie = 53;
	est.hdr.ts_ns = 61;
	decoder__record(d, &est, sizeof(est), collect_held, &h);
	CHECK(h.c.n == 9 && h.c.ev[8].owner.pid == 300 && (h.c.ev[8].flags & PT_F_OWNER_KNOWN));
	/* Once the time-wait ends, only the listener is left. */
	decoder__tick(d, 50 + PT_TIMEWAIT_NS, collect_held, &h);
	fail.hdr.ts_ns = 50 + PT_TIMEWAIT_NS + 1;
	decoder__record(d, &fail, sizeof(fail), collect_held, &h);
	CHECK(h.n == 2 && h.held.listeners == 1 && h.held.time_wait == 0);
	decoder__free(d);
}

/* A child a peer's reset closed before accept() returned it: its CLOSE went
 * by first, so the accept leaves nothing behind to age out an hour later. */
static void accept_of_a_closed_child_keeps_nothing(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_owner worker = owner_of(300, 2, "server");
	struct pt_sock csk = sock4(61, IPPROTO_TCP, "127.0.0.1", 80, "127.0.0.1", 41001);
	struct pt_rec_state est = rec_state(10, worker, csk, TCP_SYN_RECV, TCP_ESTABLISHED,
					    PT_F_ACCEPTED);
	struct pt_rec_state rst = rec_state(20, worker, csk, TCP_ESTABLISHED, TCP_CLOSE,
					    PT_F_ACCEPTED);
	struct pt_rec_port acc = rec_port(30, worker, csk, PT_PORT_ACCEPT, 0);

	rst.reason = PT_REASON_RST_RECV;
	acc.flags |= PT_F_GONE;
	decoder__record(d, &est, sizeof(est), collect_event, &c);
	decoder__record(d, &rst, sizeof(rst), collect_event, &c);
	decoder__record(d, &acc, sizeof(acc), collect_event, &c);
	CHECK(c.n == 3 && c.ev[2].kind == PT_PORT_ACCEPT && c.ev[2].owner.pid == 300);
	CHECK(decoder__entries(d) == 0);
	decoder__free(d);
}

/* A UDP socket bound to port 0 (a client) does not listen; connected, its
 * release says where to. */
static void udp_client_bind0_is_no_listener(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_port b = rec_port(5, client(), sock4(60, IPPROTO_UDP, "0.0.0.0", 40001,
							  "0.0.0.0", 0), PT_PORT_BIND, 0);
	struct pt_rec_port con = rec_port(6, client(), sock4(60, IPPROTO_UDP, "127.0.0.1", 40001,
							    "127.0.0.1", 53), PT_PORT_CONNECT, 0);
	struct pt_rec_port rel = rec_port(7, client(), sock4(60, IPPROTO_UDP, "0.0.0.0", 0,
							    "0.0.0.0", 0), PT_PORT_RELEASE, 0);

	decoder__record(d, &b, sizeof(b), collect_event, &c);
	CHECK(c.n == 1 && c.ev[0].kind == PT_PORT_BIND);
	decoder__record(d, &con, sizeof(con), collect_event, &c);
	decoder__record(d, &rel, sizeof(rel), collect_event, &c);
	CHECK(c.n == 3 && c.ev[2].kind == PT_PORT_RELEASE && c.ev[2].sk.lport == 40001);
	CHECK(c.ev[2].sk.rport == 53 && c.ev[2].sk.laddr[0] == 127 && c.ev[2].sk.raddr[0] == 127);
	decoder__free(d);
}

/* Records held while the start-up table is read come out after it, in the
 * order they came, each decoded as if it had not waited. */
static void held_records_come_out_in_order(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_state a = rec_state(10, client(), sock4(7, IPPROTO_TCP, "127.0.0.1", 40001,
								   "127.0.0.1", 80),
					  TCP_ESTABLISHED, TCP_CLOSE, PT_F_RELEASE);
	struct pt_rec_state b = rec_state(20, client(), sock4(8, IPPROTO_TCP, "127.0.0.1", 0,
								   "127.0.0.1", 80),
					  TCP_CLOSE, TCP_SYN_SENT, 0);
	struct pt_rec_state bad = b;

	bad.hdr.size = sizeof(bad) - 1;
	decoder__hold(d);
	decoder__record(d, &a, sizeof(a), collect_event, &c);
	decoder__record(d, &bad, sizeof(bad), collect_event, &c);
	decoder__record(d, &b, sizeof(b), collect_event, &c);
	CHECK(c.n == 0 && decoder__bad_records(d) == 0);
	CHECK(decoder__release(d, SIZE_MAX, collect_event, &c) == 0);
	CHECK(c.n == 3 && decoder__bad_records(d) == 1 && !decoder__holding(d));
	CHECK(c.ev[0].sk.cookie == 7 && c.ev[0].newstate == TCP_CLOSE);
	CHECK(c.ev[1].sk.cookie == 7 && c.ev[1].kind == PT_PORT_RELEASE);
	CHECK(c.ev[2].sk.cookie == 8 && c.ev[2].newstate == TCP_SYN_SENT);
	/* No longer holding: the next one is decoded at once. */
	decoder__record(d, &a, sizeof(a), collect_event, &c);
	CHECK(c.n == 5);
	decoder__free(d);
}

/* Released in batches, with records coming between them: they join the
 * end, and holding stops only once all are decoded. */
static void release_in_batches_keeps_the_order(void)
{
	struct decoder *d = decoder__new();
	struct collect c = {};
	struct pt_rec_state r[4];

	for (int i = 0; i < 4; i++)
		r[i] = rec_state(10 + i, client(), sock4(20 + i, IPPROTO_TCP, "127.0.0.1", 0,
							 "127.0.0.1", 80),
				 TCP_CLOSE, TCP_SYN_SENT, 0);
	decoder__hold(d);
	decoder__record(d, &r[0], sizeof(r[0]), collect_event, &c);
	decoder__record(d, &r[1], sizeof(r[1]), collect_event, &c);
	CHECK(decoder__release(d, 1, collect_event, &c) == 0);
	CHECK(c.n == 1 && c.ev[0].sk.cookie == 20 && decoder__holding(d));
	/* Comes while the rest waits: after it, not before. */
	decoder__record(d, &r[2], sizeof(r[2]), collect_event, &c);
	CHECK(c.n == 1);
	CHECK(decoder__release(d, 1, collect_event, &c) == 0);
	CHECK(c.n == 2 && c.ev[1].sk.cookie == 21 && decoder__holding(d));
	CHECK(decoder__release(d, 1, collect_event, &c) == 0);
	CHECK(c.n == 3 && c.ev[2].sk.cookie == 22 && !decoder__holding(d));
	decoder__record(d, &r[3], sizeof(r[3]), collect_event, &c);
	CHECK(c.n == 4 && c.ev[3].sk.cookie == 23);
	decoder__free(d);
}

TESTS(decoder_tests) = {
	{"decoder: records released in batches keep their order with new ones",
	 release_in_batches_keeps_the_order},
	{"decoder: records held while the table is read come out after it, in order",
	 held_records_come_out_in_order},
	{"decoder: a no-port connect() fails once, from the kernel or computed",
	 no_port_fails_once},
	{"decoder: a time-wait socket found at start-up ends, computed",
	 startup_time_wait_ends_computed},
	{"decoder: tables forget and count entries never closed", tables_age},
	{"decoder: accept() of a child a reset closed keeps nothing", accept_of_a_closed_child_keeps_nothing},
	{"decoder: accept() names the owner; a failed bind() says what held the port",
	 accept_names_the_owner_and_bind_fail_says_what_held},
	{"decoder: a UDP client bound to port 0 is no listener; its release says its peer",
	 udp_client_bind0_is_no_listener},
	{"decoder: a UDP socket's new port tells the release of its old one",
	 udp_new_port_releases_the_old},
	{"decoder: a bound UDP socket also listens", udp_bind_listens},
	{"decoder: a child's folded birth comes out first, in time", child_birth_unfolds_first},
	{"decoder: a child sent with its own birth gives no port back", unfolded_child_releases_nothing},
	{"decoder: transition that releases unfolds into two events", state_with_release_unfolds},
	{"decoder: time-wait hold ends 60 s later, computed", timewait_expires_computed},
	{"decoder: a time-wait socket found gone has its expiry dropped",
	 timewait_gone_drops_its_expiry},
	{"decoder: CLOSE->LISTEN yields a listen event", listen_is_derived},
	{"decoder: sizes and types are checked before use", sizes_and_types_checked},
	{"decoder: UDP release completed from the alloc of the same cookie",
	 udp_release_completed_from_alloc},
	{},
};
