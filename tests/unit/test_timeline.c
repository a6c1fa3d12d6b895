// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <stdlib.h>
#include "check.h"
#include "fixtures.h"
#include "timeline.h"

#define US 1000ULL	/* hold times are kept to the microsecond */

static char *render(struct timeline *t, enum output_format fmt)
{
	FILE *f = tmpfile();
	char *buf;
	long len;

	timeline__print(t, f, fmt, 0);
	len = ftell(f);
	buf = calloc(1, len + 1);
	rewind(f);
	if (fread(buf, 1, len, f) != (size_t)len)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

/* One connect() lifecycle of cookie c on port p, ending as given. */
static void connection(struct timeline *t, struct pt_owner o, __u64 c, __u16 p, __u64 t0,
		       int ending)
{
	struct pt_sock pending = sock4(c, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", 80);
	struct pt_sock sk = sock4(c, IPPROTO_TCP, "127.0.0.1", p, "127.0.0.1", 80);
	struct pt_event e;

	e = ev_state(t0, o, pending, TCP_CLOSE, TCP_SYN_SENT);
	timeline__event(t, &e);
	e = ev_state(t0 + 10 * US, o, sk, TCP_SYN_SENT, TCP_ESTABLISHED);
	timeline__event(t, &e);
	e = ev_port(t0 + 11 * US, o, sk, PT_PORT_ALLOC, 0);
	timeline__event(t, &e);
	switch (ending) {
	case PT_REASON_TW_EXPIRED:
		e = ev_state(t0 + 100 * US, o, sk, TCP_FIN_WAIT2, TCP_CLOSE);
		timeline__event(t, &e);
		e = ev_port(t0 + 100 * US, o, sk, PT_PORT_TIMEWAIT, PT_REASON_CLOSE);
		timeline__event(t, &e);
		e = ev_port(t0 + 1000 * US, o, sk, PT_PORT_RELEASE, PT_REASON_TW_EXPIRED);
		e.flags |= PT_F_COMPUTED;
		timeline__event(t, &e);
		break;
	case 0:
		break;	/* never released */
	default:
		e = ev_state(t0 + 100 * US, o, sk, TCP_ESTABLISHED, TCP_CLOSE);
		timeline__event(t, &e);
		e = ev_port(t0 + 100 * US, o, sk, PT_PORT_RELEASE, ending);
		/* The kernel does not know the owner in softirq. */
		e.flags &= ~PT_F_OWNER_KNOWN;
		e.owner.pid = 0;
		timeline__event(t, &e);
		break;
	}
}

/* The number after key in s is want, within pct percent. */
static bool within(const char *s, const char *key, unsigned long long want, unsigned int pct)
{
	const char *at = strstr(s, key);
	unsigned long long v;

	if (!at)
		return false;
	v = strtoull(at + strlen(key), NULL, 10);
	return v * 100 >= want * (100 - pct) && v * 100 <= want * (100 + pct);
}

static void release_paths_and_counts(void)
{
	struct timeline_opts o = {};
	struct timeline *t = timeline__new(&o);
	struct pt_owner p = owner_of(10, 1000, "client");
	struct pt_sock udp = sock4(9, IPPROTO_UDP, "0.0.0.0", 40003, "127.0.0.1", 53);
	struct pt_event e;
	char *out;

	connection(t, p, 1, 40000, 100 * US, PT_REASON_CLOSE);
	connection(t, p, 2, 40001, 200 * US, PT_REASON_RST_RECV);
	connection(t, p, 3, 40002, 300 * US, PT_REASON_TW_EXPIRED);
	e = ev_port(400 * US, p, udp, PT_PORT_ALLOC, 0);
	timeline__event(t, &e);
	e = ev_port(500 * US, p, udp, PT_PORT_RELEASE, PT_REASON_EXIT);
	timeline__event(t, &e);
	e = ev_port(600 * US, p, sock4(0, IPPROTO_TCP, "0.0.0.0", 0, "127.0.0.1", 80),
		    PT_PORT_ALLOC_FAIL, 0);
	e.err = 99;
	timeline__event(t, &e);

	out = render(t, OUTPUT_JSON);
	CHECK(strstr(out, "\"taken\":4,\"held\":0,\"peak\":1"));
	CHECK(strstr(out, "\"longest_ns\":1000000,"));
	CHECK(within(out, "\"median_ns\":", 100000, 6));
	CHECK(strstr(out, "\"time_wait\":1"));
	CHECK(strstr(out, "\"failures\":{\"EADDRNOTAVAIL\":1}"));
	CHECK(strstr(out, "\"reason\":\"rst-received\""));
	CHECK(strstr(out, "\"reason\":\"time-wait-expired\",\"computed\":true"));
	CHECK(strstr(out, "\"reason\":\"process-exit\""));
	free(out);
	out = render(t, OUTPUT_TEXT);
	CHECK(strstr(out, "FAILED EADDRNOTAVAIL"));
	CHECK(strstr(out, "released: time-wait-expired (computed)"));
	free(out);
	timeline__free(t);
}

static void pid_reuse_is_a_new_process(void)
{
	struct timeline_opts o = {};
	struct timeline *t = timeline__new(&o);
	char *out;

	connection(t, owner_of(10, 1000, "first"), 1, 40000, 100, PT_REASON_CLOSE);
	connection(t, owner_of(10, 9000000000ULL, "second"), 2, 40001, 200, PT_REASON_CLOSE);
	out = render(t, OUTPUT_TEXT);
	CHECK(strstr(out, "PID 10 (first)") && strstr(out, "PID 10 (second)"));
	free(out);
	timeline__free(t);
}

static void never_released_is_still_held(void)
{
	struct timeline_opts o = {};
	struct timeline *t = timeline__new(&o);
	char *out;

	connection(t, owner_of(11, 1, "holder"), 1, 40000, 100, 0);
	connection(t, owner_of(11, 1, "holder"), 2, 40001, 200, 0);
	out = render(t, OUTPUT_TEXT);
	CHECK(strstr(out, "still held 2"));
	CHECK(strstr(out, "[held at end]"));
	free(out);
	timeline__free(t);
}

static void two_cpus_out_of_order(void)
{
	struct timeline_opts o = {};
	struct timeline *t = timeline__new(&o);
	struct pt_owner p = owner_of(12, 1, "c");
	struct pt_sock sk = sock4(5, IPPROTO_TCP, "127.0.0.1", 40000, "127.0.0.1", 80);
	struct pt_event e;
	char *out, *est, *fin;

	e = ev_state(100, p, sock4(5, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", 80), TCP_CLOSE,
		     TCP_SYN_SENT);
	timeline__event(t, &e);
	/* CPU 1's FIN_WAIT1 record reaches user space before CPU 0's ESTABLISHED. */
	e = ev_state(300, p, sk, TCP_ESTABLISHED, TCP_FIN_WAIT1);
	e.cpu = 1;
	timeline__event(t, &e);
	e = ev_state(200, p, sk, TCP_SYN_SENT, TCP_ESTABLISHED);
	timeline__event(t, &e);
	out = render(t, OUTPUT_JSON);
	est = strstr(out, "[\"ESTABLISHED\",200]");
	fin = strstr(out, "[\"FIN_WAIT1\",300]");
	CHECK(est && fin && est < fin);
	free(out);
	timeline__free(t);
}

static void churn_is_folded_counts_exact(void)
{
	struct timeline_opts o = {.keep = 4};
	struct timeline *t = timeline__new(&o);
	struct pt_owner p = owner_of(13, 1, "churn");
	char *out;

	for (int i = 0; i < 1000; i++)
		connection(t, p, i + 1, 40000 + i % 4, 1000 * US * (i + 1), PT_REASON_CLOSE);
	out = render(t, OUTPUT_JSON);
	CHECK(strstr(out, "\"taken\":1000,\"held\":0,\"peak\":1"));
	CHECK(within(out, "\"median_ns\":", 100000, 6));
	CHECK(strstr(out, "\"folded\":996"));
	free(out);
	out = render(t, OUTPUT_TEXT);
	CHECK(strstr(out, "996 earlier released ports folded"));
	free(out);
	timeline__free(t);
}

/* connect() on socket c finds no free port: CLOSE -> SYN_SENT -> CLOSE
 * without a port, then its alloc-fail: the syscall's, or when syscalls are
 * not traced the one the decoder computes, at the time of the CLOSE. */
static void no_port(struct timeline *t, struct pt_owner o, __u64 c, __u64 t0, bool alloc_fail)
{
	struct pt_sock sk = sock4(c, IPPROTO_TCP, "0.0.0.0", 0, "127.0.0.1", 80);
	struct pt_event e;

	e = ev_state(t0, o, sk, TCP_CLOSE, TCP_SYN_SENT);
	timeline__event(t, &e);
	e = ev_state(t0 + 10 * US, o, sk, TCP_SYN_SENT, TCP_CLOSE);
	e.reason = PT_REASON_NO_PORT;
	timeline__event(t, &e);
	e = ev_port(alloc_fail ? t0 + 20 * US : t0 + 10 * US, o, sk, PT_PORT_ALLOC_FAIL, 0);
	e.flags |= PT_F_PORT_PENDING | PT_F_AUTOBIND | (alloc_fail ? 0 : PT_F_COMPUTED);
	e.err = 99;
	e.latency_ns = alloc_fail ? 20 * US : 0;
	timeline__event(t, &e);
}

static void connect_without_a_port_is_a_failure_not_a_hold(void)
{
	struct timeline_opts o = {};
	struct timeline *t = timeline__new(&o);
	struct pt_owner p = owner_of(14, 1, "exhaust");
	char *out, *at;
	int failed = 0;

	no_port(t, p, 1, 100 * US, true);
	/* No alloc-fail (no tracefs): the decoder's computed one. */
	no_port(t, p, 2, 200 * US, false);
	connection(t, p, 3, 40000, 2000000 * US, 0);
	no_port(t, p, 4, 3000000 * US, false);
	out = render(t, OUTPUT_JSON);
	CHECK(strstr(out, "\"taken\":1,\"held\":1,\"peak\":1"));
	CHECK(strstr(out, "\"failures\":{\"EADDRNOTAVAIL\":3}"));
	free(out);
	out = render(t, OUTPUT_TEXT);
	for (at = out; (at = strstr(at, "FAILED EADDRNOTAVAIL")); at++)
		failed++;
	CHECK(failed == 3);
	CHECK(strstr(out, "FAILED EADDRNOTAVAIL 20us"));
	CHECK(strstr(out, "still held 1,"));
	free(out);
	timeline__free(t);
}

/* Memory follows what is held now: a process that held nothing for a
 * minute leaves memory, and its timeline is still printed, whole. */
static void idle_processes_retire(void)
{
	struct timeline_opts o = {};
	struct timeline *t = timeline__new(&o);
	char *out, *at;
	int n = 0;

	for (int i = 0; i < 2000; i++)
		connection(t, owner_of(1000 + i, 1, "churn"), 1 + i, 40000 + i % 4,
			   (__u64)i * 100000 * US, PT_REASON_CLOSE);
	/* 100 ms apart: 600 in the last minute are still in memory. */
	CHECK(timeline__procs(t) >= 600 && timeline__procs(t) <= 602);
	out = render(t, OUTPUT_JSON);
	for (at = out; (at = strstr(at, "{\"type\":\"timeline\",")); at++)
		n++;
	CHECK(n == 2000);
	CHECK(strstr(out, "{\"type\":\"timeline\",\"pid\":1000,"));
	CHECK(strstr(out, "\"pid\":1000,\"pstart_ns\":1,\"comm\":\"churn\",\"cgroup\":42,"
			  "\"first_ns\":0,\"last_ns\":100000,\"taken\":1,\"held\":0,"));
	CHECK(strstr(out, "\"pid\":2999,"));
	free(out);
	timeline__free(t);
}

/* A retired process's failed bind() still says what held the port when
 * its timeline is printed at the end: the text went to the spill file with
 * it, not a pointer to memory freed at retirement. */
static void retired_bind_failure_keeps_its_holder(void)
{
	struct timeline_opts o = {};
	struct timeline *t = timeline__new(&o);
	struct pt_held held = {.listeners = 1, .listener = owner_of(77, 1, "nginx-holder")};
	struct pt_event ev = ev_port(1000000 * US, owner_of(500, 1, "svc"),
				     sock4(1, IPPROTO_TCP, "0.0.0.0", 8080, "0.0.0.0", 0),
				     PT_PORT_BIND_FAIL, 0);
	char *out;

	ev.err = EADDRINUSE;
	ev.flags |= PT_F_HELD;
	ev.held = &held;
	timeline__event(t, &ev);
	/* A minute and more later, another process's event retires it. */
	connection(t, owner_of(600, 1, "later"), 2, 40000, 100000000 * US, PT_REASON_CLOSE);
	CHECK(timeline__procs(t) == 1);
	out = render(t, OUTPUT_TEXT);
	CHECK(strstr(out, "PID 500 (svc)") && strstr(out, "held by: ") && strstr(out, "nginx-holder"));
	free(out);
	out = render(t, OUTPUT_JSON);
	CHECK(strstr(out, "\"pid\":500,") && strstr(out, "nginx-holder"));
	free(out);
	timeline__free(t);
}

TESTS(timeline_tests) = {
	{"timeline: a retired process's failed bind() keeps what held the port",
	 retired_bind_failure_keeps_its_holder},
	{"timeline: idle processes leave memory, their timelines stay", idle_processes_retire},
	{"timeline: every release path, counts and median", release_paths_and_counts},
	{"timeline: a reused pid is a new timeline", pid_reuse_is_a_new_process},
	{"timeline: a process that never releases", never_released_is_still_held},
	{"timeline: one socket's events from two CPUs, out of order", two_cpus_out_of_order},
	{"timeline: churn is folded, counts stay exact", churn_is_folded_counts_exact},
	{"timeline: a connect() without a port is a failure, not a hold",
	 connect_without_a_port_is_a_failure_not_a_hold},
	{},
};
