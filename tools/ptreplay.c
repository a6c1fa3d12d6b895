// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * ptreplay: replay raw kernel records (porttrace --record-raw FILE) through
 * porttrace's own pipeline (decoder and JSON formatter) and say how many
 * records a second user space handles, on one core, without the kernel or
 * the load: porttrace's user-space cost alone.
 *
 *   ptreplay [-s SECONDS] FILE     throughput, events to /dev/null
 *   ptreplay -o FILE               one pass, the JSON Lines events on stdout
 *                                  (what tests compare with golden output)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "output.h"
#include "pipeline.h"
#include "rawfile.h"
#include "clock.h"

static double now(void)
{
	return clock__ns(CLOCK_MONOTONIC) / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: ptreplay [-s SECONDS] FILE | ptreplay -o FILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	double seconds = 2, start, elapsed = 0;
	unsigned long long records = 0;
	struct pipeline *pipe = NULL;
	struct output *out = NULL;
	bool once = false;
	cpu_set_t one;
	size_t len;
	char *buf = NULL;
	int opt, fd, ret = 1;

	while ((opt = getopt(argc, argv, "s:o")) != -1) {
		if (opt == 'o')
			once = true;
		else if (opt != 's' || (seconds = atof(optarg)) <= 0)
			usage();
	}
	if (optind != argc - 1)
		usage();
	if (rawfile__load(argv[optind], &buf, &len))
		return 1;
	fd = once ? STDOUT_FILENO : open("/dev/null", O_WRONLY);
	if (!once) {
		CPU_ZERO(&one);
		CPU_SET(sched_getcpu(), &one);
		sched_setaffinity(0, sizeof(one), &one);
	}

	out = output__new(fd, once ? "standard output" : "/dev/null", OUTPUT_JSON, 0);
	if (out)
		pipe = pipeline__new(&(struct pipeline_opts){.out = out});
	if (!pipe) {
		fprintf(stderr, "ptreplay: out of memory\n");
		goto out;
	}
	start = now();
	/* Whole passes over the file until the time is used up. */
	do {
		const void *rec;
		size_t off = 0;
		__u32 n;

		while (rawfile__next(buf, len, &off, &rec, &n)) {
			pipeline__record(pipe, rec, n);
			records++;
		}
		/* The time-wait ends the live loop would emit as time passes. */
		pipeline__tick(pipe, UINT64_MAX);
		output__flush(out);
	} while (!once && records && (elapsed = now() - start) < seconds);
	if (!records) {
		fprintf(stderr, "ptreplay: no records in %s\n", argv[optind]);
		goto out;
	}
	pipeline__end(pipe, 0);
	output__flush(out);
	if (!once)
		printf("{\"records\":%llu,\"seconds\":%.3f,\"records_per_s\":%.0f}\n", records,
		       elapsed, records / elapsed);
	ret = 0;
out:
	pipeline__free(pipe);
	output__free(out);
	free(buf);
	return ret;
}
