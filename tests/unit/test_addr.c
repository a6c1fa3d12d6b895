// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <arpa/inet.h>
#include <string.h>
#include "addr.h"
#include "check.h"
#include "escape.h"

static void parse(__u8 family, const char *text, __u8 addr[16])
{
	memset(addr, 0, 16);
	inet_pton(family, text, addr);
}

static void ipv4_bare_and_with_port(void)
{
	char buf[ADDR_STRLEN];
	__u8 a[16];

	parse(AF_INET, "1.2.3.4", a);
	CHECK_STR(addr__str(buf, AF_INET, a), "1.2.3.4");
	CHECK_STR(addr__str_port(buf, AF_INET, a, 80), "1.2.3.4:80");
	/* Every octet width, and port 0 and 65535. */
	parse(AF_INET, "0.10.100.255", a);
	CHECK_STR(addr__str(buf, AF_INET, a), "0.10.100.255");
	CHECK_STR(addr__str_port(buf, AF_INET, a, 0), "0.10.100.255:0");
	parse(AF_INET, "255.255.255.255", a);
	CHECK_STR(addr__str_port(buf, AF_INET, a, 65535), "255.255.255.255:65535");
	/* Each of 0-255 reads as inet_ntop() writes it. */
	for (unsigned int v = 0; v < 256; v++) {
		char want[INET_ADDRSTRLEN];

		memset(a, 0, 16);
		a[0] = a[3] = v;
		inet_ntop(AF_INET, a, want, sizeof(want));
		CHECK_STR(addr__str(buf, AF_INET, a), want);
	}
}

static void ipv6_bracketed_with_port(void)
{
	char buf[ADDR_STRLEN];
	__u8 a[16];

	parse(AF_INET6, "::1", a);
	CHECK_STR(addr__str(buf, AF_INET6, a), "::1");
	CHECK_STR(addr__str_port(buf, AF_INET6, a, 80), "[::1]:80");
	parse(AF_INET6, "::", a);
	CHECK_STR(addr__str_port(buf, AF_INET6, a, 0), "[::]:0");
	/* A scope-less link-local address: the wire carries no scope id. */
	parse(AF_INET6, "fe80::1", a);
	CHECK_STR(addr__str_port(buf, AF_INET6, a, 443), "[fe80::1]:443");
	/* IPv4-mapped: IPv6 text, as inet_ntop() and ss write it. */
	parse(AF_INET6, "::ffff:127.0.0.1", a);
	CHECK_STR(addr__str(buf, AF_INET6, a), "::ffff:127.0.0.1");
	CHECK_STR(addr__str_port(buf, AF_INET6, a, 9100), "[::ffff:127.0.0.1]:9100");
	/* The longest text fits ADDR_STRLEN with its port. */
	parse(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", a);
	CHECK(strlen(addr__str_port(buf, AF_INET6, a, 65535)) < ADDR_STRLEN);
	CHECK_STR(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

/* The wire has two families: anything but AF_INET reads as IPv6. */
static void other_family_reads_as_ipv6(void)
{
	char buf[ADDR_STRLEN];
	__u8 a[16] = {0};

	CHECK_STR(addr__str(buf, 0, a), "::");
	CHECK_STR(addr__str_port(buf, 0, a, 1), "[::]:1");
}

/* The escaper's ASCII fast path hands over to the full one mid-string,
 * and stops at max with no NUL in sight. */
static void json_escape_fast_path_edges(void)
{
	char buf[ESCAPE_JSON_LEN(16)];

	*escape__json_put(buf, "portload", 16) = '\0';
	CHECK_STR(buf, "\"portload\"");
	*escape__json_put(buf, "abcdef", 3) = '\0';
	CHECK_STR(buf, "\"abc\"");
	*escape__json_put(buf, "ab\"c\\d", 16) = '\0';
	CHECK_STR(buf, "\"ab\\\"c\\\\d\"");
	*escape__json_put(buf, "ab\xff\xc3\xa9z", 16) = '\0';
	CHECK_STR(buf, "\"ab\\udcff\xc3\xa9z\"");
	*escape__json_put(buf, "ab\ncd", 16) = '\0';
	CHECK_STR(buf, "\"ab\\u000acd\"");
	*escape__json_put(buf, "", 16) = '\0';
	CHECK_STR(buf, "\"\"");
}

TESTS(addr_tests) = {
	{"addr: IPv4 bare and with a port, every octet as inet_ntop() writes it",
	 ipv4_bare_and_with_port},
	{"addr: IPv6 in brackets with a port; scope-less, IPv4-mapped, longest",
	 ipv6_bracketed_with_port},
	{"addr: a family other than AF_INET reads as IPv6", other_family_reads_as_ipv6},
	{"escape: JSON's ASCII fast path hands over mid-string and stops at max",
	 json_escape_fast_path_edges},
	{},
};
