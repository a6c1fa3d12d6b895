// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include "check.h"
#include <string.h>
#include "slab.h"
#include "socktab.h"

static void churn_keeps_every_entry(void)
{
	struct socktab *t = socktab__new(100000, sizeof(__u64));
	__u64 v;
	int bad = 0;

	/* Interleaved puts and takes exercise growth and backward shifts. */
	for (__u64 c = 1; c <= 50000; c++) {
		v = c * 3;
		socktab__put(t, c, &v);
		if (c % 3 == 0 && !socktab__take(t, c - 1, NULL))
			bad++;
	}
	for (__u64 c = 1; c <= 50000; c++) {
		__u64 *p = socktab__get(t, c);
		bool gone = c % 3 == 2 && c + 1 <= 50000;

		if (gone ? p != NULL : (!p || *p != c * 3))
			bad++;
	}
	CHECK(bad == 0);
	CHECK(socktab__count(t) == 50000 - 16666);
	CHECK(!socktab__put(t, 0, &v));
	socktab__free(t);
}

static void bounded(void)
{
	struct socktab *t = socktab__new(2, sizeof(int));
	int v = 1;

	CHECK(socktab__put(t, 1, &v) && socktab__put(t, 2, &v));
	CHECK(!socktab__put(t, 3, &v));
	CHECK(socktab__put(t, 2, &v));
	socktab__free(t);
}

/* Objects of an odd size across several chunks: distinct, zeroed, and
 * those freed come back (zeroed again) before new memory is carved. */
static void slab_reuses_what_was_freed(void)
{
	enum { N = 3000, SIZE = 392 };
	struct slab *s = slab__new(SIZE);
	static unsigned char *v[N];
	unsigned char *again;
	int bad = 0;

	for (int i = 0; s && i < N; i++) {
		v[i] = slab__zalloc(s);
		for (int k = 0; v[i] && k < SIZE; k++)
			bad += v[i][k] != 0;
		if (v[i])
			memset(v[i], 0xa5, SIZE);
		bad += !v[i] || (i && v[i] == v[i - 1]);
	}
	CHECK(s && bad == 0);
	slab__free(s, v[17]);
	slab__free(s, v[2500]);
	again = slab__zalloc(s);
	CHECK(again == v[2500] && again[0] == 0 && again[SIZE - 1] == 0);
	CHECK(slab__zalloc(s) == v[17]);
	slab__free(s, NULL);
	slab__destroy(s);
}

TESTS(socktab_tests) = {
	{"slab: objects reused after free, zeroed, across chunks", slab_reuses_what_was_freed},
	{"socktab: churn of puts and takes loses nothing", churn_keeps_every_entry},
	{"socktab: max_entries bounds it", bounded},
	{},
};
