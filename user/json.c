// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"

/* ---- appenders ---- */

static const char digit_pairs[] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

/* Exactly 8 digits of v < 10^8, two per 32-bit division. */
static char *put_8digits(char *p, unsigned int v)
{
	for (int i = 6; i >= 0; i -= 2) {
		memcpy(p + i, &digit_pairs[(v % 100) * 2], 2);
		v /= 100;
	}
	return p + 8;
}

static char *put_u32(char *p, unsigned int v)
{
	char *end, *t;

	/* CPUs, flags and the tops of timestamps: most values are short. */
	if (v < 10) {
		*p = '0' + v;
		return p + 1;
	}
	if (v < 100) {
		memcpy(p, &digit_pairs[v * 2], 2);
		return p + 2;
	}
	end = p + (v < 1000 ? 3 : v < 10000 ? 4 : v < 100000 ? 5 : v < 1000000 ? 6 :
		   v < 10000000 ? 7 : v < 100000000 ? 8 : v < 1000000000 ? 9 : 10);
	t = end;
	while (v >= 100) {
		t -= 2;
		memcpy(t, &digit_pairs[(v % 100) * 2], 2);
		v /= 100;
	}
	if (v >= 10)
		memcpy(t - 2, &digit_pairs[v * 2], 2);
	else
		t[-1] = '0' + v;
	return end;
}

/*
 * Timestamps and cookies have up to 20 digits, and formatting them was
 * most of the formatter's time: split into 8-digit chunks so that the
 * divisions are 32-bit ones, two digits at a time, written in place.
 */
char *json__put_u64(char *p, unsigned long long v)
{
	unsigned long long top;

	if (v < 100000000)
		return put_u32(p, v);
	top = v / 100000000;
	if (top < 100000000) {
		p = put_u32(p, top);
	} else {
		p = put_u32(p, top / 100000000);
		p = put_8digits(p, top % 100000000);
	}
	return put_8digits(p, v % 100000000);
}

/* ---- the writer ---- */

void json__fixed(struct json *j, char *buf, size_t cap, size_t limit)
{
	*j = (struct json){.buf = buf, .cap = cap, .limit = limit < cap ? limit : cap};
	if (cap)
		buf[0] = '\0';
}

int json__growing(struct json *j, size_t cap)
{
	*j = (struct json){.buf = malloc(cap), .cap = cap, .limit = cap, .grow = true};
	if (!j->buf)
		return -ENOMEM;
	j->buf[0] = '\0';
	return 0;
}

void json__free(struct json *j)
{
	if (j->grow)
		free(j->buf);
	j->buf = NULL;
}

/* Room for n more bytes and a NUL: grown, or full. */
static bool room(struct json *j, size_t n)
{
	size_t cap;
	char *b;

	if (j->full)
		return false;
	if (j->len + n < j->cap && j->len + n <= j->limit)
		return true;
	if (!j->grow) {
		j->full = true;
		return false;
	}
	cap = 2 * j->cap > j->len + n + 1 ? 2 * j->cap : j->len + n + 1;
	b = realloc(j->buf, cap);
	if (!b) {
		j->full = true;
		return false;
	}
	j->buf = b;
	j->cap = j->limit = cap;
	return true;
}

void json__printf(struct json *j, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (j->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(j->buf + j->len, j->cap - j->len, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < j->cap - j->len && j->len + n <= j->limit) {
		j->len += n;
		return;
	}
	if (n >= 0 && room(j, n)) {
		/* Cut short before the buffer grew: again, whole. */
		va_start(ap, fmt);
		vsnprintf(j->buf + j->len, j->cap - j->len, fmt, ap);
		va_end(ap);
		j->len += n;
		return;
	}
	j->full = true;
	j->buf[j->len] = '\0';
}

void json__string(struct json *j, const char *s, size_t max)
{
	char tmp[ESCAPE_JSON_LEN(JSON_STRING_MAX)];
	size_t n;

	if (max > JSON_STRING_MAX)
		max = JSON_STRING_MAX;
	n = json__put_string(tmp, s, max) - tmp;
	if (!room(j, n))
		return;
	memcpy(j->buf + j->len, tmp, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

const char *json__buf(const struct json *j)
{
	return j->buf;
}

size_t json__len(const struct json *j)
{
	return j->len;
}

bool json__full(const struct json *j)
{
	return j->full;
}

size_t json__mark(const struct json *j)
{
	return j->len;
}

void json__cut(struct json *j, size_t mark)
{
	j->len = mark;
	j->full = false;
	if (j->cap)
		j->buf[mark] = '\0';
}

void json__unlimit(struct json *j)
{
	j->limit = j->cap;
	j->kept = 0;
}

void json__keep(struct json *j, size_t room)
{
	size_t limit = j->limit + j->kept;

	/* A growing writer makes room instead. */
	if (j->grow)
		return;
	j->kept = room < limit ? room : limit;
	j->limit = limit - j->kept;
}
