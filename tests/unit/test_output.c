// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <netinet/in.h>
#include "check.h"
#include "fixtures.h"
#include "escape.h"
#include "json.h"
#include "logreader.h"

static void text_state_line(void)
{
	struct pt_event ev = ev_state(1000123456, owner_of(4711, 1, "curl"),
				      sock4(1, IPPROTO_TCP, "127.0.0.1", 40002, "127.0.0.1", 8080),
				      TCP_SYN_SENT, TCP_ESTABLISHED);

	CHECK_STR(format_event(&ev, OUTPUT_TEXT, 1000000000),
		  "0.000123   4711    curl            tcp4  127.0.0.1:40002       127.0.0.1:8080        SYN_SENT -> ESTABLISHED\n");
}

static void text_pending_port_is_not_zero(void)
{
	struct pt_event ev = ev_state(5, owner_of(1, 1, "c"),
				      sock4(1, IPPROTO_TCP, "0.0.0.0", 0, "127.0.0.1", 80), 7, 2);

	CHECK(strstr(format_event(&ev, OUTPUT_TEXT, 0), "(port pending)"));
	CHECK(!strstr(format_event(&ev, OUTPUT_TEXT, 0), ":0 "));
	CHECK(strstr(format_event(&ev, OUTPUT_JSON, 0), "\"lport\":null"));
}

static void text_ipv6_and_mapped(void)
{
	struct pt_event ev = ev_state(5, owner_of(1, 1, "c"), sock6(1, "::1", 443, "::1", 50000), 3, 1);
	struct pt_event mapped = ev_state(5, owner_of(1, 1, "c"),
					  sock6(1, "::ffff:127.0.0.1", 80, "::ffff:127.0.0.1", 50001),
					  3, 1);

	CHECK(strstr(format_event(&ev, OUTPUT_TEXT, 0), "tcp6  [::1]:443 "));
	CHECK(strstr(format_event(&mapped, OUTPUT_TEXT, 0), "[::ffff:127.0.0.1]:80"));
}

/* A loss may be a full ring, a skipped hook run or state not kept: the
 * line says where, not which. */
static void text_lost_line(void)
{
	struct pt_event ev = {.type = PT_EV_LOST, .ts_ns = 2500000, .lost = 3, .lost_total = 10};

	CHECK_STR(format_event(&ev, OUTPUT_TEXT, 0),
		  "0.002500   LOST 3 records in the kernel, 10 in all\n");
	CHECK(strstr(format_event(&ev, OUTPUT_JSON, 0), "\"lost\":3,\"lost_total\":10"));
	CHECK_STR(format_event(&ev, OUTPUT_CSV, 0), "2500000,lost,,,,,,,,,,,,,,3,,\n");
}

static void unknown_owner_is_not_current(void)
{
	struct pt_event ev = ev_state(5, owner_of(0, 0, ""), sock4(1, 6, "127.0.0.1", 80, "127.0.0.1", 5), 1, 8);

	ev.flags &= ~PT_F_OWNER_KNOWN;
	CHECK(strstr(format_event(&ev, OUTPUT_TEXT, 0), " -       -  "));
	CHECK(strstr(format_event(&ev, OUTPUT_JSON, 0), "\"pid\":null"));
}

static void json_round_trip(void)
{
	struct logreader *r = logreader__new();
	struct pt_event in = ev_port(99, owner_of(7, 123456789, "we\"ird\x01"),
				     sock6(77, "::1", 40001, "::1", 443), PT_PORT_ALLOC_FAIL, 0);
	struct pt_event out;
	const char *line;

	in.err = 99;
	in.latency_ns = 31337;
	in.opts = PT_OPT_REUSEADDR | PT_OPT_BIND_NO_PORT;
	in.req_port = 5;
	in.flags |= PT_F_AUTOBIND | PT_F_RESERVED;
	in.cpu = 1;
	line = format_event(&in, OUTPUT_JSON, 0);
	CHECK(logreader__parse_line(r, line, strlen(line), &out) == 1);
	CHECK(out.type == in.type && out.kind == in.kind && out.ts_ns == in.ts_ns);
	CHECK(out.err == 99 && out.latency_ns == 31337 && out.opts == in.opts);
	CHECK(out.flags == in.flags && out.req_port == 5 && out.cpu == 1);
	CHECK(!memcmp(&out.owner, &in.owner, sizeof(in.owner)));
	CHECK(!memcmp(&out.sk, &in.sk, sizeof(in.sk)));
	logreader__free(r);
}

/* A hostile name shown to people: no control byte, bidi mark or invalid
 * byte passes; valid UTF-8 does; columns stay straight. */
static void text_hostile_names_escaped(void)
{
	struct pt_event ev = ev_state(5, owner_of(1, 1, "\x1b[2J\r\nPID 1"),
				      sock4(1, IPPROTO_TCP, "127.0.0.1", 1, "127.0.0.1", 2), 2, 1);
	struct pt_event cafe = ev_state(5, owner_of(1, 1, "caf\xc3\xa9"),
					sock4(1, IPPROTO_TCP, "127.0.0.1", 1, "127.0.0.1", 2), 2, 1);
	char buf[ESCAPE_TEXT_LEN(16)];
	const char *line;

	CHECK_STR(escape__text(buf, "\x1b]52;c;\x07", 16), "\\x1b]52;c;\\x07");
	CHECK_STR(escape__text(buf, "a\\x1b", 16), "a\\\\x1b");
	CHECK_STR(escape__text(buf, "caf\xc3\xa9 \xe2\x80\xae!", 16), "caf\xc3\xa9 \\xe2\\x80\\xae!");
	CHECK_STR(escape__text(buf, "\xc2\x9b" "1m\xff\xc3", 16), "\\xc2\\x9b1m\\xff\\xc3");
	CHECK_STR(escape__text(buf, "\xed\xa0\x80\xc0\xaf", 16), "\\xed\\xa0\\x80\\xc0\\xaf");
	line = format_event(&ev, OUTPUT_TEXT, 0);
	CHECK(strstr(line, "\\x1b[2J\\x0d\\x0aPID 1 tcp4"));
	CHECK(!strpbrk(line, "\x1b\r") && strchr(line, '\n') == line + strlen(line) - 1);
	line = format_event(&ev, OUTPUT_CSV, 0);
	CHECK(strstr(line, ",\"\\x1b[2J\\x0d\\x0aPID 1\","));
	CHECK(!strpbrk(line, "\x1b\r") && strchr(line, '\n') == line + strlen(line) - 1);
	/* Padded to 15 columns: "café" is 4 of them, in 5 bytes. */
	CHECK(strstr(format_event(&cafe, OUTPUT_TEXT, 0), "    caf\xc3\xa9            tcp4"));
	CHECK(strstr(format_event(&cafe, OUTPUT_CSV, 0), ",\"caf\xc3\xa9\","));
}

/* JSON: UTF-8 as UTF-8, invalid bytes as \udcNN, and both read back to the
 * very bytes; logs written before (\u00NN for every byte) still read. */
static void json_utf8_and_invalid_bytes_round_trip(void)
{
	static const char *const names[] = {"caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
					    "a\xff" "b\xc3", "\xf0\x9f\x98\x80x", "q\"\\\x1b\x7f"};
	struct logreader *r = logreader__new();
	struct pt_event out;
	char buf[ESCAPE_JSON_LEN(16)];
	const char *line;

	CHECK_STR((*json__put_string(buf, "caf\xc3\xa9", 16) = '\0', buf), "\"caf\xc3\xa9\"");
	CHECK_STR((*json__put_string(buf, "a\xff" "b\xc3", 16) = '\0', buf), "\"a\\udcffb\\udcc3\"");
	CHECK_STR((*json__put_string(buf, "q\"\\\x1b\x7f", 16) = '\0', buf),
		  "\"q\\\"\\\\\\u001b\\u007f\"");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct pt_event in = ev_state(5, owner_of(1, 1, names[i]),
					      sock4(1, IPPROTO_TCP, "127.0.0.1", 1, "127.0.0.1", 2), 2, 1);

		line = format_event(&in, OUTPUT_JSON, 0);
		CHECK(logreader__parse_line(r, line, strlen(line), &out) == 1);
		CHECK_STR(out.owner.comm, names[i]);
	}
	line = "{\"type\":\"state\",\"t_ns\":1,\"pid\":1,\"comm\":\"caf\\u00c3\\u00a9 \\ud83d\\ude00\","
	       "\"family\":4,\"laddr\":\"127.0.0.1\",\"raddr\":\"127.0.0.1\",\"old\":\"CLOSE\",\"new\":\"LISTEN\"}";
	CHECK(logreader__parse_line(r, line, strlen(line), &out) == 1);
	CHECK_STR(out.owner.comm, "caf\xc3\xa9 \xf0\x9f\x98\x80");
	logreader__free(r);
}

static void port_meaning(void)
{
	struct pt_event ssh = ev_port(1, owner_of(1, 1, "d"), sock4(1, 6, "0.0.0.0", 22, "0.0.0.0", 0),
				      PT_PORT_LISTEN, 0);
	struct pt_event eph = ev_port(1, owner_of(1, 1, "d"),
				      sock4(1, 6, "0.0.0.0", 40001, "0.0.0.0", 0), PT_PORT_LISTEN, 0);
	const char *j = format_event(&ssh, OUTPUT_JSON, 0);

	CHECK(strstr(j, "\"class\":\"well-known\"") && strstr(j, "\"service\":\"ssh\""));
	CHECK(strstr(j, "\"ephemeral\":false"));
	CHECK(strstr(format_event(&eph, OUTPUT_JSON, 0), "\"ephemeral\":true"));
	CHECK(strstr(format_event(&eph, OUTPUT_TEXT, 0), "IN-EPHEMERAL-RANGE"));
}

/* Numbers are formatted in 8-digit chunks: every chunk boundary, and the
 * largest values a record can carry, read back as printf writes them. */
static void json_numbers_at_chunk_boundaries(void)
{
	static const unsigned long long vals[] = {
		0, 9, 10, 99, 100, 99999999, 100000000, 100000001, 999999999999ULL,
		9999999999999999ULL, 10000000000000000ULL, 10000000000000001ULL,
		18446744073709551615ULL,
	};

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		struct pt_event ev = ev_state(vals[i], owner_of(4294967295u, vals[i], "c"),
					      sock4(1, IPPROTO_TCP, "127.0.0.1", 1, "127.0.0.1", 2),
					      TCP_SYN_SENT, TCP_ESTABLISHED);
		char want[64];
		const char *line;

		ev.sk.cookie = vals[i];
		line = format_event(&ev, OUTPUT_JSON, 0);
		snprintf(want, sizeof(want), "\"t_ns\":%llu,", vals[i]);
		CHECK(strstr(line, want));
		snprintf(want, sizeof(want), "\"pstart_ns\":%llu,", vals[i]);
		CHECK(strstr(line, want));
		snprintf(want, sizeof(want), "\"cookie\":%llu,", vals[i]);
		CHECK(strstr(line, want));
		CHECK(strstr(line, "\"pid\":4294967295,"));
	}
}

TESTS(output_tests) = {
	{"output: a lost line says how many and where", text_lost_line},
	{"output: numbers at 8-digit chunk boundaries", json_numbers_at_chunk_boundaries},
	{"output: text line of a transition", text_state_line},
	{"output: a port not yet allocated is never port 0", text_pending_port_is_not_zero},
	{"output: IPv6 as [addr]:port, v4-mapped shown as such", text_ipv6_and_mapped},
	{"output: an unknown owner is shown as unknown", unknown_owner_is_not_current},
	{"output: JSON Lines read back into the same event", json_round_trip},
	{"output: class, service and ephemeral flag of a port", port_meaning},
	{"output: hostile names shown escaped to people, text and CSV", text_hostile_names_escaped},
	{"output: JSON passes UTF-8, escapes invalid bytes, reads back", json_utf8_and_invalid_bytes_round_trip},
	{},
};
