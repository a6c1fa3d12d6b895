// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "check.h"
#include "json.h"

/* Every width the appender has a path for, against printf(). */
static void numbers_as_printf_writes_them(void)
{
	static const unsigned long long v[] = {
		0, 9, 10, 99, 100, 999, 1000, 65535, 99999999, 100000000, 4026532177ULL,
		UINT32_MAX, 9999999999999999ULL, 10000000000000000ULL, UINT64_MAX,
	};
	char got[24], want[24];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		*json__put_u64(got, v[i]) = '\0';
		snprintf(want, sizeof(want), "%llu", v[i]);
		CHECK_STR(got, want);
	}
}

/* A fixed writer stops at its limit, full; cut back to a mark it goes on,
 * and past the limit once lifted, never past its buffer. */
static void fixed_writer_stops_at_its_limit(void)
{
	char buf[32];
	struct json j;
	size_t mark;

	json__fixed(&j, buf, sizeof(buf), 16);
	json__printf(&j, "{\"a\":%d", 1);
	mark = json__mark(&j);
	json__printf(&j, ",\"long\":\"%s\"", "0123456789");
	CHECK(json__full(&j));
	CHECK_STR(json__buf(&j), "{\"a\":1");
	json__printf(&j, "}");	/* full: nothing more */
	CHECK_STR(json__buf(&j), "{\"a\":1");
	json__cut(&j, mark);
	CHECK(!json__full(&j));
	json__unlimit(&j);
	json__printf(&j, ",\"b\":2}");
	CHECK_STR(json__buf(&j), "{\"a\":1,\"b\":2}");
	CHECK(json__len(&j) == strlen("{\"a\":1,\"b\":2}"));
	json__printf(&j, "%s", "this does not fit in the 32 bytes");
	CHECK(json__full(&j) && strlen(json__buf(&j)) < sizeof(buf));
}

/* A growing writer takes whatever comes, strings escaped. */
static void growing_writer_grows(void)
{
	struct json j;
	size_t n = 0;

	CHECK(json__growing(&j, 8) == 0);
	for (int i = 0; i < 1000; i++)
		json__printf(&j, "%s%d", i ? "," : "[", i);
	json__printf(&j, "]");
	CHECK(!json__full(&j));
	for (int i = 0; i < 1000; i++)
		n += snprintf(NULL, 0, "%d", i) + 1;
	CHECK(json__len(&j) == n + 1 && json__buf(&j)[0] == '[');
	json__free(&j);
}

/* Names through the writer: invalid UTF-8 as \udcNN, quotes and controls
 * escaped, at most max bytes. */
static void strings_escaped_through_the_writer(void)
{
	char buf[128];
	struct json j;

	json__fixed(&j, buf, sizeof(buf), sizeof(buf));
	json__printf(&j, "{\"comm\":");
	json__string(&j, "a\xff\"b\x1b", 16);
	json__printf(&j, ",\"t\":");
	json__string(&j, "0123456789abcdefXYZ", 16);
	json__printf(&j, "}");
	CHECK_STR(json__buf(&j), "{\"comm\":\"a\\udcff\\\"b\\u001b\",\"t\":\"0123456789abcdef\"}");
	/* Too long for what is left: left out whole, the writer full. */
	json__fixed(&j, buf, 8, 8);
	json__string(&j, "abcdefgh", 16);
	CHECK(json__full(&j) && json__len(&j) == 0 && buf[0] == '\0');
}

TESTS(json_tests) = {
	{"json: numbers of every width as printf() writes them", numbers_as_printf_writes_them},
	{"json: a fixed writer stops at its limit, cuts back to a mark, closes past it",
	 fixed_writer_stops_at_its_limit},
	{"json: a growing writer grows", growing_writer_grows},
	{"json: names through the writer are escaped, invalid UTF-8 included",
	 strings_escaped_through_the_writer},
	{},
};
