// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* Unit tests: the decoder, output, log reader, timelines and socket table,
 * fed synthetic records and events; no kernel, no root. */
#include <stdio.h>
#include "check.h"

int check_failures;

extern const struct test decoder_tests[], output_tests[], logreader_tests[], timeline_tests[],
	socktab_tests[], exhaustion_tests[], replay_tests[], metrics_tests[], report_tests[],
	addr_tests[], json_tests[];

static const struct test *const groups[] = {
	decoder_tests, output_tests, logreader_tests, timeline_tests, socktab_tests,
	exhaustion_tests, replay_tests, metrics_tests, report_tests, addr_tests,
	json_tests,
};

int main(void)
{
	int passed = 0, failed = 0;

	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		for (const struct test *t = groups[g]; t->name; t++) {
			int before = check_failures;

			t->fn();
			if (check_failures == before) {
				passed++;
			} else {
				failed++;
				fprintf(stderr, "FAILED %s\n", t->name);
			}
		}
	}
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
