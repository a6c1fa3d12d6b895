// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * porttrace: which process holds which TCP or UDP port, from allocation to
 * release, straight from the kernel. main() only picks the command.
 */
#include <stdio.h>
#include <string.h>
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

int main(int argc, char **argv)
{
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
