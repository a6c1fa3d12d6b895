// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* Names from cgroup paths, and the exposition built from the accounting. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include "cgroup.h"
#include "check.h"
#include "exhaustion.h"
#include "fixtures.h"
#include "metrics.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define UID "1b2c3d4e-5f60-4a1b-8c2d-3e4f5a6b7c8d"
#define UID_ "1b2c3d4e_5f60_4a1b_8c2d_3e4f5a6b7c8d"

static void cgroup_paths(void)
{
	static const struct {
		const char *path, *unit, *runtime, *container, *pod, *name;
	} cases[] = {
		{"/system.slice/nginx.service", "nginx.service", "", "", "", "nginx.service"},
		{"/system.slice/nginx.service/worker", "nginx.service", "", "", "", "nginx.service"},
		{"/user.slice/user-1000.slice/session-3.scope", "session-3.scope", "", "", "",
		 "session-3.scope"},
		{"/system.slice/docker-" HEX64 ".scope", "", "docker", HEX64, "", "docker:0123456789ab"},
		{"/docker/" HEX64, "", "docker", HEX64, "", "docker:0123456789ab"},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
		 ".slice/cri-containerd-" HEX64 ".scope",
		 "", "containerd", HEX64, UID, "containerd:0123456789ab"},
		{"/kubepods/besteffort/pod" UID "/" HEX64, "", "cri", HEX64, UID, "cri:0123456789ab"},
		{"/kubepods.slice/kubepods-pod" UID_ ".slice/crio-" HEX64 ".scope", "", "cri-o", HEX64,
		 UID, "cri-o:0123456789ab"},
		{"/machine.slice/libpod-" HEX64 ".scope/container", "", "podman", HEX64, "",
		 "podman:0123456789ab"},
		/* Near misses name nothing they are not. */
		{"/system.slice/docker-0123.scope", "docker-0123.scope", "", "", "", "docker-0123.scope"},
		{"/kubepods/podnotauid/x", "", "", "", "", "/kubepods/podnotauid/x"},
		{"/user.slice", "", "", "", "", "/user.slice"},
		{"/", "", "", "", "", ""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cgroup_ident id;

		cgroup__parse_path(cases[i].path, &id);
		CHECK_STR(id.path, cases[i].path);
		CHECK_STR(id.unit, cases[i].unit);
		CHECK_STR(id.runtime, cases[i].runtime);
		CHECK_STR(id.container, cases[i].container);
		CHECK_STR(id.pod, cases[i].pod);
		CHECK_STR(id.name, cases[i].name);
	}
}

static void feed(struct exhaustion *e, struct metrics *m, struct pt_event ev)
{
	exhaustion__event(e, &ev);
	metrics__event(m, &ev);
}

static void connect_ok(struct exhaustion *e, struct metrics *m, struct pt_owner o, __u64 c,
		       __u16 p, __u16 rport, __u64 t, __u64 lat)
{
	struct pt_sock pending = sock4(c, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", rport);
	struct pt_sock sk = sock4(c, IPPROTO_TCP, "127.0.0.1", p, "127.0.0.1", rport);
	struct pt_event a;

	feed(e, m, ev_state(t, o, pending, TCP_CLOSE, TCP_SYN_SENT));
	feed(e, m, ev_state(t + 10, o, sk, TCP_SYN_SENT, TCP_ESTABLISHED));
	a = ev_port(t + 20, o, sk, PT_PORT_ALLOC, 0);
	a.latency_ns = lat;
	feed(e, m, a);
}

static void connect_fail(struct exhaustion *e, struct metrics *m, struct pt_owner o, __u64 c,
			 __u16 rport, __u64 t)
{
	struct pt_sock pending = sock4(c, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", rport);
	struct pt_event f;

	feed(e, m, ev_state(t, o, pending, TCP_CLOSE, TCP_SYN_SENT));
	feed(e, m, ev_state(t + 5, o, pending, TCP_SYN_SENT, TCP_CLOSE));
	/* As the decoder makes it: completed with the source address of
	 * its SYN_SENT -> CLOSE. */
	f = ev_port(t + 10, o, sock4(c, IPPROTO_TCP, "127.0.0.1", 0, "127.0.0.1", rport),
		    PT_PORT_ALLOC_FAIL, 0);
	f.err = EADDRNOTAVAIL;
	f.flags |= PT_F_PORT_PENDING;
	f.latency_ns = 70000;
	feed(e, m, f);
}

/* The line for series, or "" when the exposition lacks it. */
static const char *line(const char *text, const char *series)
{
	static char buf[512];
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, series, n) && p[n] == ' ') {
			size_t len = strcspn(p, "\n");

			snprintf(buf, sizeof(buf), "%.*s", (int)len, p);
			return buf;
		}
	}
	return "";
}

#define DEST(port) "netns=\"4026531840\",proto=\"tcp\",laddr=\"127.0.0.1\",raddr=\"127.0.0.1\",rport=\"" port "\""
#define OTHER "netns=\"other\",proto=\"other\",laddr=\"other\",raddr=\"other\",rport=\"other\""

static void exposition_from_the_accounting(void)
{
	struct exhaustion_opts xo = {.warn_frac = 0.8, .interval_s = 10};
	struct exhaustion *e = exhaustion__new(&xo);
	struct metrics *m = metrics__new(2, e, NULL, NULL);
	struct pt_owner o = owner_of(10, 1000, "client");
	struct metrics_health h = {.lost_kernel = 3, .lost_write = 2, .bad_records = 1,
				   .ring_bytes = 8388608, .ring_max_queued = 2097152};
	char *text = NULL;
	size_t len;

	/* :80 full (4 of 4) and one refusal; :81 half; :82 and :83 one each. */
	for (int i = 0; i < 4; i++)
		connect_ok(e, m, o, 10 + i, 40000 + i, 80, 1000 + i * 100, 20000 + i * 100000);
	connect_fail(e, m, o, 20, 80, 2000);
	connect_fail(e, m, owner_of(11, 1000, "client"), 21, 80, 2100);
	CHECK(!metrics__build(m, 3000, 3000, &h, &text, &len));
	CHECK(text && len == strlen(text));
	if (!text)
		goto out;
	CHECK_STR(line(text, "porttrace_ring_buffer_fill_ratio"), "porttrace_ring_buffer_fill_ratio 0.25");
	CHECK_STR(line(text, "porttrace_ring_buffer_size_bytes"), "porttrace_ring_buffer_size_bytes 8388608");
	CHECK_STR(line(text, "porttrace_ephemeral_ports_capacity{netns=\"4026531840\",proto=\"tcp\"}"),
		  "porttrace_ephemeral_ports_capacity{netns=\"4026531840\",proto=\"tcp\"} 4");
	CHECK_STR(line(text, "porttrace_destination_ports{" DEST("80") ",state=\"established\"}"),
		  "porttrace_destination_ports{" DEST("80") ",state=\"established\"} 4");
	CHECK_STR(line(text, "porttrace_destination_ports_peak{" DEST("80") "}"),
		  "porttrace_destination_ports_peak{" DEST("80") "} 4");
	CHECK_STR(line(text, "porttrace_destination_full_seconds{" DEST("80") "}"),
		  "porttrace_destination_full_seconds{" DEST("80") "} 0");
	CHECK_STR(line(text, "porttrace_port_allocations_total{" DEST("80") "}"),
		  "porttrace_port_allocations_total{" DEST("80") "} 4");
	CHECK_STR(line(text, "porttrace_port_allocation_failures_total{" DEST("80") ",errno=\"EADDRNOTAVAIL\"}"),
		  "porttrace_port_allocation_failures_total{" DEST("80") ",errno=\"EADDRNOTAVAIL\"} 2");
	/* Cumulative buckets: 20, 120, 220 and 320 us, two failures at 70 us. */
	CHECK_STR(line(text, "porttrace_connect_latency_seconds_bucket{" DEST("80") ",le=\"1.6383e-05\"}"),
		  "porttrace_connect_latency_seconds_bucket{" DEST("80") ",le=\"1.6383e-05\"} 0");
	CHECK_STR(line(text, "porttrace_connect_latency_seconds_bucket{" DEST("80") ",le=\"6.5535e-05\"}"),
		  "porttrace_connect_latency_seconds_bucket{" DEST("80") ",le=\"6.5535e-05\"} 1");
	CHECK_STR(line(text, "porttrace_connect_latency_seconds_bucket{" DEST("80") ",le=\"0.000262143\"}"),
		  "porttrace_connect_latency_seconds_bucket{" DEST("80") ",le=\"0.000262143\"} 5");
	CHECK_STR(line(text, "porttrace_connect_latency_seconds_bucket{" DEST("80") ",le=\"+Inf\"}"),
		  "porttrace_connect_latency_seconds_bucket{" DEST("80") ",le=\"+Inf\"} 6");
	CHECK_STR(line(text, "porttrace_connect_latency_seconds_count{" DEST("80") "}"),
		  "porttrace_connect_latency_seconds_count{" DEST("80") "} 6");
	CHECK_STR(line(text, "porttrace_connect_latency_seconds_sum{" DEST("80") "}"),
		  "porttrace_connect_latency_seconds_sum{" DEST("80") "} 0.00082");
	/* Two pids of one name and cgroup are one owner; never a pid label. */
	CHECK_STR(line(text, "porttrace_owner_allocation_failures_total{comm=\"client\",unit=\"\",container=\"\",pod=\"\",errno=\"EADDRNOTAVAIL\"}"),
		  "porttrace_owner_allocation_failures_total{comm=\"client\",unit=\"\",container=\"\",pod=\"\",errno=\"EADDRNOTAVAIL\"} 2");
	CHECK(!strstr(text, "pid="));
	CHECK(!strstr(text, OTHER));
	CHECK_STR(line(text, "porttrace_kernel_records_lost_total"), "porttrace_kernel_records_lost_total 3");
	CHECK_STR(line(text, "porttrace_events_write_lost_total"), "porttrace_events_write_lost_total 2");
	CHECK_STR(line(text, "porttrace_bad_records_total"), "porttrace_bad_records_total 1");
	CHECK_STR(line(text, "porttrace_events_total{type=\"alloc-fail\"}"),
		  "porttrace_events_total{type=\"alloc-fail\"} 2");
	free(text);
	text = NULL;

	/* Past the cap of 2: the fullest stay, the rest are summed. */
	for (int i = 0; i < 4; i++) {
		connect_ok(e, m, o, 100 + i, 40000, 81 + i, 4000 + i * 100, 1000);
	}
	CHECK(!metrics__build(m, 5000, 5000, &h, &text, &len));
	if (!text)
		goto out;
	CHECK(strstr(text, DEST("80")) != NULL);
	CHECK_STR(line(text, "porttrace_port_allocations_total{" OTHER "}"),
		  "porttrace_port_allocations_total{" OTHER "} 3");
	CHECK_STR(line(text, "porttrace_destination_ports{" OTHER ",state=\"established\"}"),
		  "porttrace_destination_ports{" OTHER ",state=\"established\"} 3");
	CHECK_STR(line(text, "porttrace_connect_latency_seconds_count{" OTHER "}"),
		  "porttrace_connect_latency_seconds_count{" OTHER "} 3");
	/* Two destinations and the pool, each once; then other. */
	{
		int n = 0;

		for (const char *p = text; (p = strstr(p, "porttrace_port_allocations_total{")); p++)
			n++;
		CHECK(n == 4);
	}
out:
	free(text);
	metrics__free(m);
	exhaustion__free(e);
}

TESTS(metrics_tests) = {
	{"cgroup: units, containers and pods from paths", cgroup_paths},
	{"metrics: the exposition reads the accounting, capped", exposition_from_the_accounting},
	{},
};
