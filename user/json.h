/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * json: the one JSON writer, in two layers.
 *
 * Appenders, for a line whose room the caller reserved once: the event
 * stream writes tens of thousands of lines a second and checks no room per
 * value. Numbers are written two digits at a time (printf() was most of the
 * stream's time); strings go through escape.c, the one escaper.
 *
 * struct json, a writer for records and reports: into a fixed buffer (a
 * record that must fit in a line: the writer stops, full, at its limit and
 * the caller may cut back to a mark) or into one it grows. Its members are
 * read by callers only through json__len() and json__buf().
 */
#ifndef PT_JSON_H
#define PT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include "escape.h"

/* v in decimal at p; returns the end (at most 20 bytes, no NUL). */
char *json__put_u64(char *p, unsigned long long v);
/* s (at most max bytes, up to its NUL) as a JSON string, quotes included,
 * at p (room: ESCAPE_JSON_LEN(max)); returns the end, no NUL. */
static inline char *json__put_string(char *p, const char *s, size_t max)
{
	return escape__json_put(p, s, max);
}

struct json {
	char *buf;
	size_t len, cap, limit;	/* content stops at limit; json__unlimit() lifts it */
	size_t kept;		/* of the limit, by json__keep() */
	bool grow, full;
};

/* A writer into buf (cap bytes) that stops at limit (<= cap). */
void json__fixed(struct json *j, char *buf, size_t cap, size_t limit);
/* A writer into a buffer it allocates and grows; 0 or -ENOMEM.
 * json__free() frees it. */
int json__growing(struct json *j, size_t cap);
void json__free(struct json *j);

/* Punctuation, keys and numbers, as printf() writes them. */
void json__printf(struct json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A string value, escaped: at most max bytes of s, and of those at most
 * JSON_STRING_MAX (names from the kernel and the cgroup tree are shorter). */
#define JSON_STRING_MAX 256
void json__string(struct json *j, const char *s, size_t max);

/* What was written (NUL-terminated while it fits), its length, and whether
 * something did not fit. */
const char *json__buf(const struct json *j);
size_t json__len(const struct json *j);
bool json__full(const struct json *j);

/* Where the writer is now; json__cut() drops what came after it and
 * clears full: a piece that did not fit is left out whole. */
size_t json__mark(const struct json *j);
void json__cut(struct json *j, size_t mark);
/* The room kept past the limit is for the closing: use it from now on. */
void json__unlimit(struct json *j);
/* A fixed writer stops room bytes short of its limit from now on, so that
 * what must close a piece still fits; json__keep(j, 0) gives them back. */
void json__keep(struct json *j, size_t room);

#endif /* PT_JSON_H */
