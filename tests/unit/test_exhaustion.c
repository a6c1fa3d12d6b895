// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "check.h"
#include "exhaustion.h"
#include "fixtures.h"
#include "logreader.h"
#include "output.h"

#define NS 1000000000ULL

static struct exhaustion *fresh(void)
{
	struct exhaustion_opts o = {.warn_frac = 0.75, .interval_s = 10};

	return exhaustion__new(&o);
}

static void feed(struct exhaustion *e, struct pt_event ev)
{
	exhaustion__event(e, &ev);
}

/* The row of destination rport (0: the pool's own row) of the fixtures'
 * namespace; NULL when there is none. Freed with the rows. */
static const struct exhaustion_row *row(struct exhaustion_row *v, size_t n, __u8 proto, __u16 rport)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].proto == proto && (rport ? !v[i].any && v[i].rport == rport : v[i].any))
			return &v[i];
	return NULL;
}

/* A connect() to 127.0.0.1:rport that gets port p, as the kernel tells it. */
static void connect_ok(struct exhaustion *e, struct pt_owner o, __u64 c, __u16 p, __u16 rport,
		       __u64 t)
{
	struct pt_sock pending = sock4(c, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", rport);
	struct pt_sock sk = sock4(c, IPPROTO_TCP, "127.0.0.1", p, "127.0.0.1", rport);
	struct pt_event a;

	feed(e, ev_state(t, o, pending, TCP_CLOSE, TCP_SYN_SENT));
	feed(e, ev_state(t + 10, o, sk, TCP_SYN_SENT, TCP_ESTABLISHED));
	a = ev_port(t + 20, o, sk, PT_PORT_ALLOC, 0);
	a.latency_ns = 20000;
	feed(e, a);
}

/* A connect() that finds no port: two transitions without one, then the
 * syscall's failure, whose socket has lost its source address: the decoder
 * gives it back the one its CLOSE transition had. */
static void connect_fail(struct exhaustion *e, struct pt_owner o, __u64 c, __u16 rport, __u64 t)
{
	struct pt_sock pending = sock4(c, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", rport);
	struct pt_event f;

	feed(e, ev_state(t, o, pending, TCP_CLOSE, TCP_SYN_SENT));
	feed(e, ev_state(t + 5, o, pending, TCP_SYN_SENT, TCP_CLOSE));
	f = ev_port(t + 10, o, pending, PT_PORT_ALLOC_FAIL, 0);
	f.err = EADDRNOTAVAIL;
	f.flags |= PT_F_PORT_PENDING;
	f.latency_ns = 90000;
	feed(e, f);
}

static void full_destination(void)
{
	struct exhaustion *e = fresh();
	struct pt_owner o = owner_of(10, 1000, "client"), other = owner_of(11, 1000, "other");
	const struct exhaustion_row *d, *any, *second;
	struct exhaustion_row *v;
	size_t n;

	for (int i = 0; i < 4; i++)
		connect_ok(e, o, 1 + i, 40000 + i, 80, (1 + i) * NS);
	connect_fail(e, other, 9, 80, 6 * NS);
	connect_ok(e, o, 10, 40000, 81, 7 * NS);	/* the same port, another peer */
	v = exhaustion__rows(e, 0, &n);
	d = row(v, n, IPPROTO_TCP, 80);
	second = row(v, n, IPPROTO_TCP, 81);
	any = row(v, n, IPPROTO_TCP, 0);
	CHECK(d && second && any);
	if (d && second && any) {
		CHECK(d->capacity == 4 && d->occupancy == 4 && d->own == 4);
		CHECK(d->state[EXH_ESTABLISHED] == 4);
		/* The attempt that found no port never counted. */
		CHECK(d->peak == 4 && d->peak_ns == 4 * NS + 10);
		CHECK(d->failures == 1 && d->fail_err == EADDRNOTAVAIL);
		CHECK(d->first_fail_ns == 6 * NS + 10 && d->last_fail_ns == 6 * NS + 10);
		CHECK(d->ntop == 2 && d->top[0].pid == 10 && d->top[0].held == 4);
		CHECK(d->top[1].pid == 11 && d->top[1].held == 0 && d->top[1].failures == 1);
		CHECK(d->full_in_s == 0);
		CHECK(d->lat_n == 5 && d->lat_p50_ns >= 19000 && d->lat_p50_ns <= 21000);
		CHECK(d->lat_p99_ns >= 85000 && d->lat_p99_ns <= 95000);
		CHECK(second->occupancy == 1 && second->failures == 0);
		CHECK(any->occupancy == 0 && any->failures == 0);
		/* Fullest first, after the pool's own row. */
		CHECK(v[0].any && v[1].rport == 80);
	}
	free(v);
	exhaustion__free(e);
}

static void time_wait_and_takeover(void)
{
	struct exhaustion *e = fresh();
	struct pt_owner o = owner_of(10, 1000, "client");
	struct pt_sock sk = sock4(1, IPPROTO_TCP, "127.0.0.1", 40000, "127.0.0.1", 80);
	struct pt_sock sk2 = sock4(2, IPPROTO_TCP, "127.0.0.1", 40001, "127.0.0.1", 80);
	const struct exhaustion_row *d;
	struct exhaustion_row *v;
	struct pt_event ev;
	size_t n;

	connect_ok(e, o, 1, 40000, 80, NS);
	connect_ok(e, o, 2, 40001, 80, NS);
	feed(e, ev_state(2 * NS, o, sk, TCP_ESTABLISHED, TCP_FIN_WAIT1));
	ev = ev_state(2 * NS + 1, o, sk, TCP_FIN_WAIT2, TCP_CLOSE);
	ev.flags |= PT_F_TIMEWAIT;
	feed(e, ev);
	feed(e, ev_port(2 * NS + 1, o, sk, PT_PORT_TIMEWAIT, PT_REASON_CLOSE));
	/* SO_LINGER 0: given back at once. */
	ev = ev_state(2 * NS + 2, o, sk2, TCP_ESTABLISHED, TCP_CLOSE);
	ev.flags |= PT_F_RELEASE;
	feed(e, ev);
	feed(e, ev_port(2 * NS + 2, o, sk2, PT_PORT_RELEASE, PT_REASON_RST_SENT));
	v = exhaustion__rows(e, 0, &n);
	d = row(v, n, IPPROTO_TCP, 80);
	CHECK(d && d->occupancy == 1 && d->state[EXH_TIME_WAIT] == 1 && d->state[EXH_ESTABLISHED] == 0);
	free(v);

	/* tcp_tw_reuse: a new connect() to the same peer takes 40000 over;
	 * the time-wait socket is gone without an event. */
	connect_ok(e, o, 3, 40000, 80, 3 * NS);
	v = exhaustion__rows(e, 0, &n);
	d = row(v, n, IPPROTO_TCP, 80);
	CHECK(d && d->occupancy == 1 && d->state[EXH_TIME_WAIT] == 0 && d->state[EXH_ESTABLISHED] == 1);
	free(v);
	/* Its computed expiry finds nothing left to release. */
	ev = ev_port(62 * NS, o, sk, PT_PORT_RELEASE, PT_REASON_TW_EXPIRED);
	ev.flags |= PT_F_COMPUTED;
	feed(e, ev);
	v = exhaustion__rows(e, 0, &n);
	d = row(v, n, IPPROTO_TCP, 80);
	CHECK(d && d->occupancy == 1 && d->peak == 2);
	free(v);
	exhaustion__free(e);
}

static void shared_ports(void)
{
	struct exhaustion *e = fresh();
	struct pt_owner o = owner_of(10, 1000, "server");
	const struct exhaustion_row *d, *any, *udp;
	struct exhaustion_row *v;
	struct pt_event ev;
	size_t n;

	connect_ok(e, o, 1, 40000, 80, NS);
	/* bind(addr, 0), twice on one port (SO_REUSEPORT): one port. */
	ev = ev_port(2 * NS, o, sock4(5, IPPROTO_TCP, "127.0.0.1", 40002, "0.0.0.0", 0), PT_PORT_BIND, 0);
	ev.flags |= PT_F_AUTOBIND;
	feed(e, ev);
	ev.sk.cookie = 6;
	feed(e, ev);
	/* A bound port outside the range: not in the count. */
	feed(e, ev_port(2 * NS, o, sock4(7, IPPROTO_TCP, "0.0.0.0", 8080, "0.0.0.0", 0), PT_PORT_BIND, 0));
	/* UDP: its own space. */
	feed(e, ev_port(3 * NS, o, sock4(8, IPPROTO_UDP, "0.0.0.0", 40000, "127.0.0.1", 53), PT_PORT_ALLOC, 0));
	v = exhaustion__rows(e, 0, &n);
	d = row(v, n, IPPROTO_TCP, 80);
	any = row(v, n, IPPROTO_TCP, 0);
	udp = row(v, n, IPPROTO_UDP, 0);
	CHECK(d && any && udp);
	if (d && any && udp) {
		CHECK(any->shared == 1 && any->occupancy == 1);
		CHECK(d->own == 1 && d->shared == 1 && d->occupancy == 2);
		CHECK(udp->occupancy == 1 && udp->capacity == 4);
	}
	free(v);
	/* One of the two sockets on 40002 goes: the port is still held. */
	feed(e, ev_port(4 * NS, o, sock4(5, IPPROTO_TCP, "127.0.0.1", 40002, "0.0.0.0", 0), PT_PORT_RELEASE,
			PT_REASON_SOCK_CLOSE));
	v = exhaustion__rows(e, 0, &n);
	any = row(v, n, IPPROTO_TCP, 0);
	CHECK(any && any->shared == 1);
	free(v);
	feed(e, ev_port(5 * NS, o, sock4(6, IPPROTO_TCP, "127.0.0.1", 40002, "0.0.0.0", 0), PT_PORT_RELEASE,
			PT_REASON_SOCK_CLOSE));
	v = exhaustion__rows(e, 0, &n);
	any = row(v, n, IPPROTO_TCP, 0);
	CHECK(any && any->shared == 0);
	free(v);
	exhaustion__free(e);
}

static void range_and_reserved(void)
{
	struct exhaustion *e = fresh();
	struct pt_owner o = owner_of(10, 1000, "client");
	const struct exhaustion_row *d;
	struct exhaustion_row *v;
	struct pt_event ev;
	size_t n;

	connect_ok(e, o, 1, 40000, 80, NS);
	connect_ok(e, o, 2, 40003, 80, NS);
	/* A wider range, seen on the next event. */
	ev = ev_state(2 * NS, o, sock4(3, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", 80), TCP_CLOSE,
		      TCP_SYN_SENT);
	ev.sk.range_hi = 40009;
	feed(e, ev);
	v = exhaustion__rows(e, 0, &n);
	d = row(v, n, IPPROTO_TCP, 80);
	CHECK(d && d->capacity == 10 && d->range_hi == 40009 && d->occupancy == 2);
	free(v);
	/* A release is filled in from older records: its range is old news. */
	ev = ev_port(3 * NS, o, sock4(1, IPPROTO_TCP, "127.0.0.1", 40000, "127.0.0.1", 80), PT_PORT_RELEASE,
		     PT_REASON_CLOSE);
	feed(e, ev);
	/* A narrower one: 40003 is out; a reserved port is no capacity. */
	ev = ev_port(4 * NS, o, sock4(4, IPPROTO_TCP, "127.0.0.1", 40001, "0.0.0.0", 0), PT_PORT_BIND, 0);
	ev.sk.range_hi = 40002;
	ev.flags |= PT_F_RESERVED;
	feed(e, ev);
	v = exhaustion__rows(e, 0, &n);
	d = row(v, n, IPPROTO_TCP, 80);
	CHECK(d && d->range_hi == 40002 && d->capacity == 2 && d->reserved == 1);
	CHECK(d && d->own == 0 && d->shared == 0 && d->occupancy == 0);
	free(v);
	exhaustion__free(e);
}

/* What sockdiag says of a socket held before tracing began. */
static struct pt_event existing(__u64 cookie, __u16 lport, __u16 rport, __u8 state, __u64 left_ns)
{
	struct pt_event ev = ev_port(NS, owner_of(20, 500, "old"), sock4(cookie, IPPROTO_TCP, "127.0.0.1",
								   lport, "127.0.0.1", rport),
				     PT_PORT_EXISTING, 0);

	ev.newstate = state;
	ev.latency_ns = left_ns;
	if (left_ns) {
		/* A time-wait socket: no process holds it any more. */
		memset(&ev.owner, 0, sizeof(ev.owner));
		ev.flags &= ~PT_F_OWNER_KNOWN;
	}
	return ev;
}

static void seeded_from_the_socket_table(void)
{
	struct exhaustion *e = fresh();
	const struct exhaustion_row *d, *any;
	struct exhaustion_row *v;
	struct pt_owner o = owner_of(20, 500 + 7000000, "old");	/* /proc's 10 ms ticks */
	struct pt_event ev;
	size_t n;

	feed(e, existing(1, 40001, 0, TCP_LISTEN, 0));		/* a listener in the range */
	feed(e, existing(2, 40001, 80, TCP_ESTABLISHED, 0));	/* accepted from it */
	feed(e, existing(3, 40000, 80, TCP_ESTABLISHED, 0));	/* a connect() */
	feed(e, existing(4, 40002, 80, 6 /* TIME_WAIT */, 30 * NS));
	v = exhaustion__rows(e, 0, &n);
	d = row(v, n, IPPROTO_TCP, 80);
	any = row(v, n, IPPROTO_TCP, 0);
	CHECK(d && any);
	if (d && any) {
		CHECK(any->shared == 1);
		CHECK(d->own == 2 && d->state[EXH_ESTABLISHED] == 1 && d->state[EXH_TIME_WAIT] == 1);
		CHECK(d->occupancy == 3 && d->alloc_per_s == 0);
		CHECK(d->ntop == 2 && d->top[0].pid == 20 && d->top[0].held == 1);
		CHECK(d->top[1].pid == 0 && d->top[1].held == 1);
	}
	free(v);
	/* Its owner's later events, with the exact start time: one process. */
	ev = ev_state(2 * NS, o, sock4(3, IPPROTO_TCP, "127.0.0.1", 40000, "127.0.0.1", 80),
		      TCP_ESTABLISHED, TCP_FIN_WAIT1);
	feed(e, ev);
	/* The time-wait socket's end, as the decoder computes it from the
	 * time the kernel said it had left. */
	ev = ev_port(31 * NS, o, sock4(4, IPPROTO_TCP, "127.0.0.1", 40002, "127.0.0.1", 80),
		     PT_PORT_RELEASE, PT_REASON_TW_EXPIRED);
	memset(&ev.owner, 0, sizeof(ev.owner));
	ev.flags = PT_F_COMPUTED;
	feed(e, ev);
	feed(e, ev_state(40 * NS, o, sock4(9, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", 81), TCP_CLOSE,
			 TCP_SYN_SENT));
	v = exhaustion__rows(e, 0, &n);
	d = row(v, n, IPPROTO_TCP, 80);
	CHECK(d && d->own == 1 && d->state[EXH_CLOSING] == 1 && d->state[EXH_TIME_WAIT] == 0);
	CHECK(d && d->ntop == 1 && d->top[0].pid == 20 && d->top[0].held == 1);
	free(v);
	exhaustion__free(e);
}

static void records_and_report(void)
{
	struct exhaustion *e = fresh();
	struct pt_owner o = owner_of(10, 1000, "client");
	struct logreader *r = logreader__new();
	struct pt_event back;
	char buf[64 * 1024], small[900], *text = NULL;
	size_t tlen = 0;
	FILE *f;
	int len;

	for (int i = 0; i < 4; i++)
		connect_ok(e, o, 1 + i, 40000 + i, 80 + i, NS);
	/* Nothing due until an interval has passed since the first call. */
	CHECK(exhaustion__snapshot(e, 5 * NS, buf, sizeof(buf)) == 0);
	CHECK(exhaustion__snapshot(e, 14 * NS, buf, sizeof(buf)) == 0);
	len = exhaustion__snapshot(e, 15 * NS, buf, sizeof(buf));
	CHECK(len > 0 && buf[len - 1] == '\n' && !strncmp(buf, "{\"type\":\"exhaustion\",\"t_ns\":15000000000,", 40));
	CHECK(strstr(buf, "\"final\":false") && strstr(buf, "\"capacity\":4"));
	/* The log reader passes over it, without a warning. */
	CHECK(logreader__parse_line(r, buf, len, &back) == 0);
	CHECK(logreader__warnings(r) == 0);
	/* Too small for every destination: fewer, and still one whole line. */
	len = exhaustion__json(e, 0, true, small, sizeof(small), NULL);
	CHECK(len > 0 && small[len - 1] == '\n' && strstr(small, "\"more_dests\":") &&
	      !strstr(small, "\"more_dests\":0"));
	CHECK(exhaustion__json(e, 0, true, small, 64, NULL) == -ENOSPC);

	f = open_memstream(&text, &tlen);
	exhaustion__report(e, f);
	fclose(f);
	CHECK(strstr(text, "netns 4026531840 tcp: ephemeral range 40000-40003, capacity 4 (0 reserved)"));
	CHECK(strstr(text, "127.0.0.1 > 127.0.0.1:80 "));
	CHECK(strstr(text, "pid 10 client holds 4"));
	free(text);
	logreader__free(r);
	exhaustion__free(e);
}

static void raw_lines_are_no_events(void)
{
	int fd = memfd_create("out", 0);
	struct output *o = output__new(fd, "memfd", OUTPUT_JSON, 0);
	char got[64] = "";
	ssize_t n;

	CHECK(output__raw(o, "{\"type\":\"exhaustion\"}\n", 22) == 0);
	output__flush(o);
	CHECK(output__written(o) == 0);
	n = pread(fd, got, sizeof(got) - 1, 0);
	CHECK(n == 22 && !strcmp(got, "{\"type\":\"exhaustion\"}\n"));
	output__free(o);
	close(fd);
}

/* Warnings and peaks follow the shared count without visiting every
 * destination: a bind takes one destination across the threshold (3 of 4
 * at 75%), not one with fewer ports of its own; its release re-arms it. */
static void shared_moves_cross_only_some(void)
{
	struct exhaustion *e = fresh();
	struct pt_owner o = owner_of(10, 1000, "client");
	struct exhaustion_status st;
	const struct exhaustion_row *d80, *d81;
	struct exhaustion_row *v;
	struct pt_event b;
	size_t n;

	connect_ok(e, o, 1, 40000, 80, NS);
	connect_ok(e, o, 2, 40001, 80, NS);
	connect_ok(e, o, 3, 40000, 81, NS);
	b = ev_port(5 * NS, o, sock4(4, IPPROTO_TCP, "127.0.0.1", 40002, "0.0.0.0", 0), PT_PORT_BIND, 0);
	feed(e, b);
	exhaustion__status(e, &st);
	CHECK(st.warnings == 1);
	feed(e, ev_port(6 * NS, o, b.sk, PT_PORT_RELEASE, PT_REASON_SOCK_CLOSE));
	b.sk.cookie = 5;
	b.ts_ns = 7 * NS;
	feed(e, b);
	exhaustion__status(e, &st);
	CHECK(st.warnings == 2);
	v = exhaustion__rows(e, 0, &n);
	d80 = row(v, n, IPPROTO_TCP, 80);
	d81 = row(v, n, IPPROTO_TCP, 81);
	CHECK(d80 && d80->peak == 3 && d80->peak_ns == 5 * NS && d80->occupancy == 3);
	CHECK(d81 && d81->peak == 2 && d81->peak_ns == 5 * NS && d81->occupancy == 2);
	free(v);
	exhaustion__free(e);
}

/* State is bounded by what is held now: a destination that held nothing
 * for a minute goes (its failures stay in its pool's totals), and so does
 * a process nothing names any more. */
static void empty_destinations_and_processes_go(void)
{
	struct exhaustion *e = fresh();
	struct exhaustion_status st;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	for (int i = 0; i < 1000; i++) {
		struct pt_owner o = owner_of(100 + i, 1000, "churn");
		__u64 t = NS + i * 1000000ULL;

		connect_ok(e, o, 1 + i, 40000 + i % 4, 1000 + i, t);
		feed(e, ev_port(t + 500, o, sock4(1 + i, IPPROTO_TCP, "127.0.0.1", 40000 + i % 4,
						   "127.0.0.1", 1000 + i), PT_PORT_RELEASE,
				PT_REASON_RST_SENT));
	}
	connect_fail(e, owner_of(99, 1000, "failer"), 5000, 1000, 3 * NS);
	exhaustion__status(e, &st);
	CHECK(st.dests == 1000 && st.procs == 1 && st.socks == 0);
	/* A minute and more later, one connection: all that is left. */
	connect_ok(e, owner_of(7, 1000, "late"), 9000, 40000, 80, 70 * NS);
	exhaustion__status(e, &st);
	CHECK(st.dests == 1 && st.procs == 1 && st.socks == 1);
	f = open_memstream(&text, &len);
	exhaustion__json(e, 0, true, NULL, 0, f);
	fclose(f);
	CHECK(strstr(text, "\"retired_dests\":1000,\"retired_failures\":1,"));
	free(text);
	exhaustion__free(e);
}

/* The top rows of each pool are the head of every row, made without
 * making the others: by own count, then failures, ties in arrival order. */
static void top_rows_are_the_head_of_all(void)
{
	struct exhaustion *e = fresh();
	struct exhaustion_row *all, *top;
	size_t n, ntop;
	__u64 c = 1;

	for (int i = 0; i < 30; i++) {
		struct pt_owner o = owner_of(100 + i, 1000, "mix");
		__u64 t = NS + i * 1000000ULL;

		connect_ok(e, o, c++, 40000 + i % 4, 1000 + i, t);
		if (i % 7 == 0)
			connect_ok(e, o, c++, 40000 + (i + 1) % 4, 1000 + i, t + 100);
		if (i % 5 == 1)
			connect_fail(e, o, c++, 1000 + i, t + 200);
		if (i % 3)
			feed(e, ev_port(t + 300, o, sock4(c - 1 - (i % 5 == 1), IPPROTO_TCP, "127.0.0.1",
							   40000 + i % 4, "127.0.0.1", 1000 + i),
					PT_PORT_RELEASE, PT_REASON_RST_SENT));
	}
	all = exhaustion__rows(e, 0, &n);
	top = exhaustion__rows_top(e, 0, 6, &ntop);
	CHECK(all && top && n == 31 && ntop == 7);
	if (all && top && n == 31 && ntop == 7) {
		CHECK(all[0].dests == 30 && top[0].dests == 30);
		/* The order is not arrival order alone: held, then failed. */
		CHECK(top[1].own == 2 && top[6].own == 1);
		CHECK(!memcmp(all, top, ntop * sizeof(*top)));
	}
	free(all);
	free(top);
	exhaustion__free(e);
}

/* Brackets and braces close in order, outside strings: a whole record. */
static bool balanced(const char *s)
{
	char stack[64];
	int depth = 0;

	for (; *s; s++) {
		if (*s == '"') {
			for (s++; *s && *s != '"'; s++)
				if (*s == '\\' && s[1])
					s++;
			if (!*s)
				return false;
		} else if (*s == '{' || *s == '[') {
			if (depth == (int)sizeof(stack))
				return false;
			stack[depth++] = *s;
		} else if (*s == '}' || *s == ']') {
			if (!depth || stack[--depth] != (*s == '}' ? '{' : '['))
				return false;
		}
	}
	return depth == 0;
}

/*
 * The final record of a run with more destinations than a log line holds
 * (a busy host's time-wait sockets at start-up): every pool, the
 * destinations that fit, and a line that still closes. It used to be lost
 * whole: the destinations filled the line to where the pool's processes
 * could not follow.
 */
static void final_record_of_many_destinations(void)
{
	struct exhaustion *e = fresh();
	static char buf[60 * 1024];
	__u64 c = 1;
	int len;

	for (int i = 0; i < 3000; i++) {
		char comm[16];
		struct pt_owner o;

		/* Names escaped to their longest: bytes that are no UTF-8. */
		memset(comm, 0xff, sizeof(comm) - 1);
		comm[15] = '\0';
		o = owner_of(100 + i % 50, 1000, comm);
		connect_ok(e, o, c++, 40000 + i % 20000, 1024 + i, NS + i);
	}
	/* A second namespace, after the first in the record. */
	for (int i = 0; i < 3; i++, c++) {
		struct pt_owner o = owner_of(7, 1000, "other");
		struct pt_sock pending = sock4(c, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.2", 80);
		struct pt_sock sk = sock4(c, IPPROTO_TCP, "127.0.0.1", 40000 + i, "127.0.0.2", 80);

		pending.netns = sk.netns = 4026530000;
		feed(e, ev_state(2 * NS + i, o, pending, TCP_CLOSE, TCP_SYN_SENT));
		feed(e, ev_state(2 * NS + i + 1, o, sk, TCP_SYN_SENT, TCP_ESTABLISHED));
		feed(e, ev_port(2 * NS + i + 2, o, sk, PT_PORT_ALLOC, 0));
	}
	len = exhaustion__json(e, 0, true, buf, sizeof(buf), NULL);
	CHECK(len > 0 && (size_t)len <= sizeof(buf) && buf[len - 1] == '\n');
	if (len > 0) {
		buf[len - 1] = '\0';
		CHECK(balanced(buf));
		CHECK(strstr(buf, "\"netns\":4026531840,") && strstr(buf, "\"netns\":4026530000,"));
		CHECK(strstr(buf, "\"more_dests\":") && !strstr(buf, "\"more_pools\""));
	}
	/* Room for the first pool only: the second is counted. */
	len = exhaustion__json(e, 0, true, buf, 1400, NULL);
	CHECK(len > 0 && buf[len - 1] == '\n');
	if (len > 0) {
		buf[len - 1] = '\0';
		CHECK(balanced(buf) && strstr(buf, "\"more_pools\":1}"));
	}
	exhaustion__free(e);
}

/* n connect()s to port 80 in second sec, each reset right after (the
 * fixtures' range has four ports). */
static void alloc_at(struct exhaustion *e, struct pt_owner o, __u64 *c, __u64 sec, int n)
{
	for (int i = 0; i < n; i++, ++*c) {
		__u64 t = sec * NS + *c * 1000;

		connect_ok(e, o, *c, 40000, 80, t);
		feed(e, ev_port(t + 30, o, sock4(*c, IPPROTO_TCP, "127.0.0.1", 40000, "127.0.0.1", 80),
				PT_PORT_RELEASE, PT_REASON_RST_SENT));
	}
}

/* Allocations per second of port 80 at now_ms, times the window. */
static long rate_at(struct exhaustion *e, __u64 now_ms)
{
	struct exhaustion_row *v;
	const struct exhaustion_row *d;
	long r = -1;
	size_t n;

	v = exhaustion__rows(e, now_ms * 1000000ULL, &n);
	d = row(v, n, IPPROTO_TCP, 80);
	if (d)
		r = lround(d->alloc_per_s * 10);
	free(v);
	return r;
}

/* Rates count the last RATE_WINDOW seconds of event time: a second late
 * by a little still counts, a gap longer than the window leaves nothing
 * of before it, and one older than the slots remember is not counted. */
static void rates_over_the_window(void)
{
	struct exhaustion *e = fresh();
	struct pt_owner o = owner_of(10, 1000, "client");
	__u64 c = 1;

	/* Seconds 100, 101 (3), 105 (2), then 104 (1), late. */
	alloc_at(e, o, &c, 100, 1);
	alloc_at(e, o, &c, 101, 3);
	alloc_at(e, o, &c, 105, 2);
	alloc_at(e, o, &c, 104, 1);
	CHECK(rate_at(e, 110500) == 6);	/* 101..110 */
	CHECK(rate_at(e, 111500) == 3);	/* 102..111 */
	CHECK(rate_at(e, 129000) == 0);
	/* After a gap longer than the slots: nothing of before it. */
	alloc_at(e, o, &c, 130, 1);
	CHECK(rate_at(e, 130500) == 1);
	/* Older than the slots remember: not counted. */
	alloc_at(e, o, &c, 110, 1);
	CHECK(rate_at(e, 130500) == 1);
	exhaustion__free(e);
}

TESTS(exhaustion_tests) = {
	{"exhaustion: rates over the window, a gap, an event too old", rates_over_the_window},
	{"exhaustion: the top rows of a pool are the head of all its rows",
	 top_rows_are_the_head_of_all},
	{"exhaustion: a shared move crosses only the destinations it takes across",
	 shared_moves_cross_only_some},
	{"exhaustion: empty destinations and unnamed processes are retired",
	 empty_destinations_and_processes_go},
	{"exhaustion: a full destination, its failure, another peer", full_destination},
	{"exhaustion: TIME_WAIT held, RST free, tw_reuse takeover", time_wait_and_takeover},
	{"exhaustion: shared ports count once, for every destination", shared_ports},
	{"exhaustion: range changes and reserved ports", range_and_reserved},
	{"exhaustion: seeded from the socket table", seeded_from_the_socket_table},
	{"exhaustion: records, truncation, report", records_and_report},
	{"exhaustion: a final record of more destinations than a line holds still closes",
	 final_record_of_many_destinations},
	{"output: raw lines are no events", raw_lines_are_no_events},
	{},
};
