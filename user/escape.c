// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <stdbool.h>
#include "escape.h"

static const char hex[] = "0123456789abcdef";

/*
 * Length of the valid UTF-8 sequence at s (at most n bytes), its code point
 * in *cp; 0 when s does not start one (overlong forms, surrogates and code
 * points above U+10FFFF are not valid: RFC 3629).
 */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned int *cp)
{
	unsigned int c = s[0], v, min;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* Characters that act on a terminal or on how a line reads, not shown as
 * themselves: controls, and the bidirectional marks, embeddings, overrides
 * and isolates that make a line display in another order than it is. */
static bool unsafe_for_people(unsigned int cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
	       cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

static char *put_hex_byte(char *p, const char *prefix, unsigned char c)
{
	while (*prefix)
		*p++ = *prefix++;
	*p++ = hex[c >> 4];
	*p++ = hex[c & 15];
	return p;
}

static size_t bounded_len(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

char *escape__text_put(char *p, const char *s, size_t max, size_t *cols)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = bounded_len(s, max), i = 0, w = 0;

	while (i < n) {
		unsigned int cp;
		size_t len = utf8_seq(u + i, n - i, &cp);

		if (len && cp == '\\') {
			*p++ = '\\';
			*p++ = '\\';
			w += 2;
		} else if (len && !unsafe_for_people(cp)) {
			for (size_t k = 0; k < len; k++)
				*p++ = u[i + k];
			w++;
		} else {
			/* Invalid: this byte alone; unsafe: each of its bytes. */
			if (!len)
				len = 1;
			for (size_t k = 0; k < len; k++)
				p = put_hex_byte(p, "\\x", u[i + k]);
			w += 4 * len;
		}
		i += len;
	}
	if (cols)
		*cols = w;
	return p;
}

const char *escape__text(char *buf, const char *s, size_t max)
{
	*escape__text_put(buf, s, max, NULL) = '\0';
	return buf;
}

char *escape__json_put(char *p, const char *s, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n, i = 0;

	*p++ = '"';
	/* Names are nearly always printable ASCII, copied as they are: the
	 * JSON stream writes one or two per event. */
	while (i < max && u[i] >= 0x20 && u[i] < 0x7f && u[i] != '"' && u[i] != '\\')
		*p++ = u[i++];
	n = i + bounded_len(s + i, max - i);
	while (i < n) {
		unsigned int cp;
		size_t len = utf8_seq(u + i, n - i, &cp);

		if (!len) {
			p = put_hex_byte(p, "\\udc", u[i]);
			len = 1;
		} else if (cp == '"' || cp == '\\') {
			*p++ = '\\';
			*p++ = cp;
		} else if (cp < 0x20 || cp == 0x7f) {
			p = put_hex_byte(p, "\\u00", cp);
		} else {
			for (size_t k = 0; k < len; k++)
				*p++ = u[i + k];
		}
		i += len;
	}
	*p++ = '"';
	return p;
}
