/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* A minimal harness: CHECK records a failure and goes on; every TEST is
 * counted as passed or failed; main prints "N passed, N failed". */
#ifndef PT_CHECK_H
#define PT_CHECK_H

#include <stdio.h>
#include <string.h>

extern int check_failures;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			check_failures++;                                              \
			fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                      \
	} while (0)

#define CHECK_STR(got, want)                                                           \
	do {                                                                           \
		const char *g_ = (got), *w_ = (want);                                  \
		if (strcmp(g_, w_)) {                                                  \
			check_failures++;                                              \
			fprintf(stderr, "  FAIL %s:%d:\n    got:  %s\n    want: %s\n", __FILE__, \
				__LINE__, g_, w_);                                     \
		}                                                                      \
	} while (0)

struct test {
	const char *name;
	void (*fn)(void);
};

/* Each test file defines one table. */
#define TESTS(group) const struct test group[]

#endif /* PT_CHECK_H */
