// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * porttrace: which process holds which TCP or UDP port, from allocation to
 * release, straight from the kernel. main() only picks the command.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "exhaustion.h"
#include "report.h"
#include "run.h"
#include "timeline.h"

struct command {
	const char *name;
	int (*main)(int argc, char **argv);
};

static const struct command commands[] = {
	{"run", run__main},
	{"timeline", timeline__main},
	{"exhaustion", exhaustion__main},
	{"top", top__main},
	{"report", report__main},
};

/*
 * The heap on transparent huge pages. Over a long run the accounting's
 * small objects (sockets, processes, ports) come and go at different
 * paces and spread over ever more 4 KiB pages; every event then pays TLB
 * misses, and a soak's CPU per event grew 1.7x in seven minutes (1.15x
 * with huge pages; README, "Memory"). glibc does it when told at
 * start, before main, so porttrace starts itself once more with the
 * tunable set, unless the caller chose a value of its own. Where it
 * cannot (no /proc), it runs on as it is.
 */
static void heap_on_huge_pages(char **argv)
{
	const char *was = getenv("GLIBC_TUNABLES");
	char *both;

	if (was && strstr(was, "glibc.malloc.hugetlb"))
		return;
	if (asprintf(&both, "%s%sglibc.malloc.hugetlb=1", was ? was : "",
		     was && *was ? ":" : "") < 0)
		return;
	if (!setenv("GLIBC_TUNABLES", both, 1)) {
		execv("/proc/self/exe", argv);
		if (was)
			setenv("GLIBC_TUNABLES", was, 1);
		else
			unsetenv("GLIBC_TUNABLES");
	}
	free(both);
}

int main(int argc, char **argv)
{
	heap_on_huge_pages(argv);
	/* Messages say "porttrace:", however it was started. */
	argv[0] = "porttrace";
	/* "porttrace CMD ..." runs CMD; anything else is a live run. */
	if (argc > 1 && argv[1][0] != '-') {
		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
			if (!strcmp(argv[1], commands[i].name)) {
				static char name[64];

				snprintf(name, sizeof(name), "porttrace %s", commands[i].name);
				argv[1] = name;
				return commands[i].main(argc - 1, argv + 1);
			}
		}
	}
	return run__main(argc, argv);
}
