// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include "check.h"
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

TESTS(socktab_tests) = {
	{"socktab: churn of puts and takes loses nothing", churn_keeps_every_entry},
	{"socktab: max_entries bounds it", bounded},
	{},
};
