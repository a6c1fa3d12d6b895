// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* The report's aggregation: time buckets sampled from exhaustion, halving,
 * the fullest destinations, listeners, and the HTML escaping. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "exhaustion.h"
#include "fixtures.h"
#include "report.h"
#include "timeline.h"

#define MS 1000000ULL
#define T0 (1000 * MS)	/* the run's start */

struct chain {
	struct exhaustion *ex;
	struct timeline *tl;
	struct report *rep;
};

static struct chain chain_new(const struct report_opts *ro)
{
	struct exhaustion_opts xo = {.warn_frac = 0.75, .interval_s = 10};
	struct timeline_opts to = {.keep = 200};
	struct chain c;

	c.ex = exhaustion__new(&xo);
	c.tl = timeline__new(&to);
	c.rep = report__new(ro, c.ex, c.tl);
	report__set_start(c.rep, T0, 1700000000ULL * 1000000000ULL);
	return c;
}

static void chain_free(struct chain *c)
{
	report__free(c->rep);
	timeline__free(c->tl);
	exhaustion__free(c->ex);
}

/* As the pipeline does: timeline, report, then exhaustion. */
static void feed(struct chain *c, struct pt_event ev)
{
	timeline__event(c->tl, &ev);
	report__event(c->rep, &ev);
	exhaustion__event(c->ex, &ev);
}

static void connect_ok(struct chain *c, struct pt_owner o, __u64 ck, __u16 p, __u16 rport, __u64 t,
		       __u64 lat)
{
	struct pt_sock pending = sock4(ck, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", rport);
	struct pt_sock sk = sock4(ck, IPPROTO_TCP, "127.0.0.1", p, "127.0.0.1", rport);
	struct pt_event a;

	feed(c, ev_state(t, o, pending, TCP_CLOSE, TCP_SYN_SENT));
	feed(c, ev_state(t + 10, o, sk, TCP_SYN_SENT, TCP_ESTABLISHED));
	a = ev_port(t + 20, o, sk, PT_PORT_ALLOC, 0);
	a.latency_ns = lat;
	feed(c, a);
}

static void connect_fail(struct chain *c, struct pt_owner o, __u64 ck, __u16 rport, __u64 t)
{
	struct pt_sock pending = sock4(ck, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", rport);
	struct pt_event f;

	feed(c, ev_state(t, o, pending, TCP_CLOSE, TCP_SYN_SENT));
	feed(c, ev_state(t + 5, o, pending, TCP_SYN_SENT, TCP_CLOSE));
	/* As the decoder gives it: with the source address of its CLOSE. */
	f = ev_port(t + 10, o, pending, PT_PORT_ALLOC_FAIL, 0);
	f.err = EADDRNOTAVAIL;
	f.flags |= PT_F_PORT_PENDING;
	f.latency_ns = 90000;
	feed(c, f);
}

/* The port of a connect() goes to time-wait, then is released. */
static void close_tw(struct chain *c, struct pt_owner o, __u64 ck, __u16 p, __u16 rport, __u64 t)
{
	struct pt_sock sk = sock4(ck, IPPROTO_TCP, "127.0.0.1", p, "127.0.0.1", rport);
	struct pt_event s = ev_state(t, o, sk, TCP_FIN_WAIT2, TCP_CLOSE);

	feed(c, ev_state(t - 1, o, sk, TCP_ESTABLISHED, TCP_FIN_WAIT1));
	s.flags |= PT_F_TIMEWAIT;
	feed(c, s);
	feed(c, ev_port(t, o, sk, PT_PORT_TIMEWAIT, 0));
}

static unsigned long long sum_failures(const struct report_view *v, const struct report_series *s)
{
	unsigned long long n = 0;

	for (unsigned int i = 0; i < v->nb; i++)
		n += s->b[i].failures;
	return n;
}

/* Each bucket holds what came before its end, exactly; the failures of
 * each bucket, the peak, capacity and the latency are exhaustion's. */
static void buckets_hold_the_state_at_their_end(void)
{
	struct chain c = chain_new(&(struct report_opts){0});
	struct pt_owner o = owner_of(10, 5, "client");
	struct report_view v;
	const struct report_series *s;

	/* +5 ms, +15 ms, +25 ms: ports 1..3; +35 ms: the 4th; then two
	 * failures at +45 and +47 ms; two ports to time-wait at +65 ms. */
	for (int i = 0; i < 4; i++)
		connect_ok(&c, o, 100 + i, 40000 + i, 8080, T0 + (5 + 10 * i) * MS, 20000 * (i + 1));
	connect_fail(&c, o, 200, 8080, T0 + 45 * MS);
	connect_fail(&c, o, 201, 8080, T0 + 47 * MS);
	close_tw(&c, o, 100, 40000, 8080, T0 + 65 * MS);
	close_tw(&c, o, 101, 40001, 8080, T0 + 65 * MS);
	feed(&c, ev_state(T0 + 95 * MS, o, sock4(103, IPPROTO_TCP, "127.0.0.1", 40003, "127.0.0.1", 8080),
			  TCP_ESTABLISHED, TCP_FIN_WAIT1));
	report__finish(c.rep);
	report__view(c.rep, &v);

	CHECK(v.width_ns == 10 * MS);
	CHECK(v.nb == 10);	/* +0 .. +100 ms: the last event's bucket is the last */
	CHECK(v.ndests == 1);
	if (v.ndests < 1)
		goto out;
	s = v.dests[0];
	CHECK(!s->last.any && s->last.rport == 8080);
	CHECK(s->last.capacity == 4 && s->last.peak == 4);
	CHECK(s->since == 0);
	/* bucket 0 (+0..10 ms) ends with one port, 1 with two ... */
	CHECK(s->b[0].occupancy == 1 && s->b[0].state[EXH_ESTABLISHED] == 1);
	CHECK(s->b[1].occupancy == 2);
	CHECK(s->b[2].occupancy == 3);
	CHECK(s->b[3].occupancy == 4 && s->b[3].max == 4);
	CHECK(s->b[4].failures == 2 && s->b[4].occupancy == 4);
	CHECK(s->b[5].failures == 0);
	CHECK(s->b[6].state[EXH_TIME_WAIT] == 2 && s->b[6].state[EXH_ESTABLISHED] == 2);
	CHECK(s->b[9].state[EXH_CLOSING] == 1 && s->b[9].state[EXH_ESTABLISHED] == 1);
	CHECK(s->b[9].capacity == 4);
	CHECK(sum_failures(&v, s) == 2);
	/* The latency of each bucket's calls: one call in bucket 1, 40 us. */
	CHECK(s->b[1].lat_n == 1);
	CHECK(s->b[1].lat_p50_ns > 38000 && s->b[1].lat_p50_ns < 42000);
	CHECK(s->b[4].lat_n == 2);	/* the two failed calls, 90 us each */
	CHECK(s->b[4].lat_p99_ns > 85000 && s->b[4].lat_p99_ns < 95000);
	CHECK(s->b[5].lat_n == 0);
	/* Buckets where nothing happened carry the state on. */
	CHECK(s->b[7].occupancy == 4 && s->b[7].max == 4 && s->b[8].occupancy == 4);
	CHECK(report__bucket_of(&v, T0 + 47 * MS) == 4);
out:
	chain_free(&c);
}

/* A long run halves the buckets as often as needed: totals, the state at
 * the end and the peak survive; the bound holds. */
static void long_runs_halve_and_keep_totals(void)
{
	struct chain c = chain_new(&(struct report_opts){0});
	struct pt_owner o = owner_of(10, 5, "client");
	struct report_view v;
	const struct report_series *s;
	unsigned int peak_max = 0;
	__u64 ck = 1000;

	/* 120 s: a port taken and released every 400 ms, a failure every
	 * 2 s, and at +77.7 s all four ports held for a moment. */
	for (__u64 t = 0; t < 120000; t += 400) {
		struct pt_sock sk = sock4(ck, IPPROTO_TCP, "127.0.0.1", 40000, "127.0.0.1", 8080);

		connect_ok(&c, o, ck, 40000, 8080, T0 + t * MS, 50000);
		feed(&c, ev_port(T0 + t * MS + 100 * MS, o, sk, PT_PORT_RELEASE, PT_REASON_RST_SENT));
		ck++;
		if (t % 1000 == 0)
			connect_fail(&c, o, ck++, 8080, T0 + t * MS + 200 * MS);
		if (t == 77600) {
			for (int i = 0; i < 4; i++)
				connect_ok(&c, o, 900000 + i, 40000 + i, 8080, T0 + 77700 * MS, 50000);
			for (int i = 0; i < 4; i++)
				feed(&c, ev_port(T0 + 77701 * MS, o,
						 sock4(900000 + i, IPPROTO_TCP, "127.0.0.1", 40000 + i,
						       "127.0.0.1", 8080),
						 PT_PORT_RELEASE, PT_REASON_RST_SENT));
		}
	}
	report__finish(c.rep);
	report__view(c.rep, &v);

	CHECK(v.nb <= REPORT_BUCKETS && v.nb > REPORT_BUCKETS / 2);
	/* 10 ms doubled until 480 buckets cover 120 s: 320 ms. */
	CHECK(v.width_ns == 320 * MS);
	CHECK(v.ndests == 1);
	if (v.ndests < 1)
		goto out;
	s = v.dests[0];
	CHECK(sum_failures(&v, s) == 60);
	CHECK(s->last.failures == 60);
	for (unsigned int i = 0; i < v.nb; i++)
		if (s->b[i].max > peak_max)
			peak_max = s->b[i].max;
	/* The moment all four were held is shorter than any bucket. */
	CHECK(peak_max == 4);
	CHECK(s->b[report__bucket_of(&v, T0 + 77700 * MS)].max == 4);
	CHECK(s->b[v.nb - 1].occupancy == 0);
	/* Merged latency: every call took 50 us or 90 us. */
	for (unsigned int i = 0; i < v.nb; i++)
		CHECK(!s->b[i].lat_n || (s->b[i].lat_p99_ns >= 45000 && s->b[i].lat_p99_ns <= 95000));
out:
	chain_free(&c);
}

/* More destinations than are followed: the fullest are drawn, fullest
 * first, whenever they came. */
static void the_fullest_destinations_are_drawn(void)
{
	struct chain c = chain_new(&(struct report_opts){.dests = 3});
	struct pt_owner o = owner_of(10, 5, "client");
	struct report_view v;
	__u64 ck = 1;

	/* 30 destinations; destination k holds (k % 4) + 1 ports... except
	 * that the last one, 9029, fails as well. */
	for (int k = 0; k < 30; k++) {
		int n = k == 29 ? 4 : (k % 3) + 1;

		for (int i = 0; i < n; i++)
			connect_ok(&c, o, ck++, 40000 + i, 9000 + k, T0 + (k * 50 + i) * MS, 10000);
		for (int i = 0; i < n; i++)
			feed(&c, ev_port(T0 + (k * 50 + 20) * MS, o,
					 sock4(ck - n + i, IPPROTO_TCP, "127.0.0.1", 40000 + i, "127.0.0.1",
					       9000 + k),
					 PT_PORT_RELEASE, PT_REASON_RST_SENT));
	}
	connect_fail(&c, o, ck++, 9029, T0 + 1600 * MS);
	report__finish(c.rep);
	report__view(c.rep, &v);

	CHECK(v.ndests == 3);
	CHECK(v.dests_seen <= REPORT_TRACK);
	CHECK(v.dests_dropped > 0);
	if (v.ndests == 3) {
		CHECK(v.dests[0]->last.rport == 9029);
		CHECK(v.dests[0]->last.peak == 4 && v.dests[0]->last.failures == 1);
		CHECK(v.dests[1]->last.peak == 3 && v.dests[2]->last.peak == 3);
		/* Followed from when it first had a row. */
		CHECK(v.dests[0]->since == report__bucket_of(&v, T0 + 29 * 50 * MS));
		CHECK(sum_failures(&v, v.dests[0]) == 1);
	}
	chain_free(&c);
}

/* Listeners: wildcard inside the ephemeral range on top, then wildcard,
 * then in range; one closed during the run says until when. */
static void listeners_to_look_at_first_are_on_top(void)
{
	struct chain c = chain_new(&(struct report_opts){0});
	struct pt_owner o = owner_of(20, 5, "server");
	struct pt_sock lo = sock4(1, IPPROTO_TCP, "127.0.0.1", 8080, "0.0.0.0", 0);
	struct pt_sock wild = sock4(2, IPPROTO_TCP, "0.0.0.0", 80, "0.0.0.0", 0);
	struct pt_sock wild_in = sock4(3, IPPROTO_TCP, "0.0.0.0", 40001, "0.0.0.0", 0);
	struct pt_sock gone = sock4(4, IPPROTO_UDP, "0.0.0.0", 40002, "0.0.0.0", 0);
	struct report_view v;

	feed(&c, ev_port(T0 + 1 * MS, o, lo, PT_PORT_LISTEN, 0));
	feed(&c, ev_port(T0 + 2 * MS, o, wild, PT_PORT_LISTEN, 0));
	feed(&c, ev_port(T0 + 3 * MS, o, wild_in, PT_PORT_LISTEN, 0));
	feed(&c, ev_port(T0 + 4 * MS, o, gone, PT_PORT_LISTEN, 0));
	feed(&c, ev_port(T0 + 9 * MS, o, gone, PT_PORT_RELEASE, PT_REASON_SOCK_CLOSE));
	report__finish(c.rep);
	report__view(c.rep, &v);

	CHECK(v.nlisteners == 4);
	if (v.nlisteners == 4) {
		CHECK(v.listeners[0].sk.lport == 40001 && v.listeners[0].in_range);
		CHECK(v.listeners[1].sk.lport == 80);
		CHECK(v.listeners[2].sk.lport == 8080 && !v.listeners[2].until_ns);
		CHECK(v.listeners[3].sk.lport == 40002 && v.listeners[3].until_ns == T0 + 9 * MS);
	}
	chain_free(&c);
}

static const char *html_text(const char *s, size_t max)
{
	static char buf[2048];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	report_html__text(f, s, max);
	fclose(f);
	return buf;
}

/* What a log or the kernel names can neither make markup nor reorder the
 * page; good UTF-8 stays as it is; the rest as every output shows it. */
static void html_text_is_escaped_in_one_place(void)
{
	CHECK_STR(html_text("<script>alert('x')&\"</script>", 64),
		  "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;");
	CHECK_STR(html_text("a\x01" "b\x7f" "c\n", 64), "a\\x01b\\x7fc\\x0a");
	CHECK_STR(html_text("caf\xc3\xa9 \xe2\x82\xac", 64), "caf\xc3\xa9 \xe2\x82\xac");
	/* invalid: a lone continuation byte, an overlong '/', a cut sequence */
	CHECK_STR(html_text("\x80/\xc0\xaf/\xe2\x82", 64), "\\x80/\\xc0\\xaf/\\xe2\\x82");
	/* U+202E RIGHT-TO-LEFT OVERRIDE and U+0085 are shown, not obeyed */
	CHECK_STR(html_text("x\xe2\x80\xaey\xc2\x85", 64), "x\\xe2\\x80\\xaey\\xc2\\x85");
	/* max bytes, as a 16-byte comm without its terminator */
	CHECK_STR(html_text("0123456789abcdefXYZ", 16), "0123456789abcdef");
	/* longer than the stack buffer */
	CHECK(strlen(html_text("<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<"
			       "<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<", 200)) ==
	      4 * 132);
}

/* The page of a tiny run: every section, the capacity line, one failure
 * mark per bucket with failures whose counts add up, lanes per port. */
static void page_holds_its_parts(void)
{
	struct chain c = chain_new(&(struct report_opts){0});
	struct pt_owner o = owner_of(10, 5, "cli<ent>");
	struct report_view v;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	unsigned long long marks = 0;
	const char *p;

	for (int i = 0; i < 4; i++)
		connect_ok(&c, o, 100 + i, 40000 + i, 8080, T0 + (5 + 10 * i) * MS, 20000);
	connect_fail(&c, o, 200, 8080, T0 + 45 * MS);
	connect_fail(&c, o, 201, 8080, T0 + 47 * MS);
	connect_fail(&c, o, 202, 8080, T0 + 75 * MS);
	report__finish(c.rep);
	report__view(c.rep, &v);
	CHECK(report_html__write(f, &v, c.tl) == 0);
	fclose(f);

	CHECK(strstr(buf, "<!DOCTYPE html>") == buf);
	CHECK(strstr(buf, "class=\"capacity\" data-capacity=\"4\"") != NULL);
	CHECK(strstr(buf, "cli&lt;ent&gt;") != NULL && !strstr(buf, "cli<ent>"));
	CHECK(strstr(buf, "http://") == NULL && strstr(buf, "https://") == NULL);
	for (p = buf; (p = strstr(p, "class=\"fail\" data-count=\"")); p++) {
		marks += strtoull(p + strlen("class=\"fail\" data-count=\""), NULL, 10);
	}
	/* Once in the occupancy chart (2 marks: 2 + 1), once on the lanes. */
	CHECK(marks == 6);
	for (int port = 40000; port < 40004; port++) {
		char want[64];

		snprintf(want, sizeof(want), "<g class=\"lane\" data-port=\"%d\">", port);
		CHECK(strstr(buf, want) != NULL);
	}
	CHECK(strstr(buf, "data-err=\"EADDRNOTAVAIL\" data-count=\"3\"") != NULL);
	CHECK(strstr(buf, "2023-11-14 22:13:20.000 UTC") != NULL);
	free(buf);
	chain_free(&c);
}

/* A destination still filling up at the end carries exhaustion's
 * forecast, drawn dashed beyond the end. */
static void a_filling_destination_has_its_forecast(void)
{
	struct chain c = chain_new(&(struct report_opts){0});
	struct pt_owner o = owner_of(10, 5, "client");
	struct report_view v;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	/* Two of four ports in the first second: 2 ports/s, full in 1 s. */
	connect_ok(&c, o, 100, 40000, 8080, T0 + 100 * MS, 20000);
	connect_ok(&c, o, 101, 40001, 8080, T0 + 900 * MS, 20000);
	report__finish(c.rep);
	report__view(c.rep, &v);
	CHECK(v.ndests == 1);
	if (v.ndests == 1)
		CHECK(v.dests[0]->full_in_s > 0.9 && v.dests[0]->full_in_s < 1.1);
	CHECK(report_html__write(f, &v, c.tl) == 0);
	fclose(f);
	CHECK(strstr(buf, "<path class=\"forecast\"") != NULL);
	CHECK(strstr(buf, "full in 1s") != NULL);
	free(buf);
	chain_free(&c);
}

/* A process that exited a minute before the end was retired from the
 * timelines' memory: it is drawn all the same, lanes and all. */
static void retired_processes_are_drawn(void)
{
	struct chain c = chain_new(&(struct report_opts){0});
	struct pt_owner gone = owner_of(10, 5, "gone"), late = owner_of(11, 5, "late");
	struct report_view v;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *fig;

	connect_ok(&c, gone, 100, 40000, 8080, T0 + 5 * MS, 20000);
	feed(&c, ev_port(T0 + 9 * MS, gone, sock4(100, IPPROTO_TCP, "127.0.0.1", 40000, "127.0.0.1", 8080),
			 PT_PORT_RELEASE, PT_REASON_RST_SENT));
	connect_fail(&c, gone, 101, 8080, T0 + 10 * MS);
	connect_ok(&c, late, 200, 40001, 8080, T0 + 70000 * MS, 20000);
	CHECK(timeline__procs(c.tl) == 1);
	report__finish(c.rep);
	report__view(c.rep, &v);
	CHECK(report_html__write(f, &v, c.tl) == 0);
	fclose(f);

	fig = strstr(buf, "<figure class=\"proc\" data-pid=\"10\">");
	CHECK(fig != NULL);
	CHECK(fig && strstr(fig, "<g class=\"lane\" data-port=\"40000\">") != NULL);
	CHECK(strstr(buf, "<figure class=\"proc\" data-pid=\"11\">") != NULL);
	CHECK(strstr(buf, "<g class=\"lane\" data-port=\"40001\">") != NULL);
	free(buf);
	chain_free(&c);
}

TESTS(report_tests) = {
	{"report: retired processes are drawn", retired_processes_are_drawn},
	{"report: buckets hold the state at their end", buckets_hold_the_state_at_their_end},
	{"report: long runs halve the buckets, totals kept", long_runs_halve_and_keep_totals},
	{"report: the fullest destinations are drawn", the_fullest_destinations_are_drawn},
	{"report: listeners to look at first on top", listeners_to_look_at_first_are_on_top},
	{"report: HTML text escaped in one place", html_text_is_escaped_in_one_place},
	{"report: the page holds its parts", page_holds_its_parts},
	{"report: a filling destination has its forecast", a_filling_destination_has_its_forecast},
	{},
};
