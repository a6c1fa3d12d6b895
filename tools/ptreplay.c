// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * ptreplay: replay raw kernel records (porttrace --record-raw FILE) through
 * porttrace's own decoder and JSON formatter into /dev/null, on one core, and
 * say how many records a second user space handles. This measures porttrace's
 * user-space cost alone, without the kernel or the load.
 *
 *   ptreplay [-s SECONDS] FILE
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "decoder.h"
#include "output.h"
#include "run.h"

static double now(void)
{
	return run__now_ns(CLOCK_MONOTONIC) / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) || !(buf = malloc(st.st_size ? st.st_size : 1))) {
		fprintf(stderr, "ptreplay: cannot read %s: %s\n", path, strerror(errno));
		exit(1);
	}
	*len = 0;
	while (*len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + *len, st.st_size - *len);

		if (n <= 0)
			break;
		*len += n;
	}
	close(fd);
	return buf;
}

int main(int argc, char **argv)
{
	double seconds = 2, start, elapsed;
	unsigned long long records = 0;
	struct decoder *dec;
	struct output *out;
	cpu_set_t one;
	size_t len;
	char *buf;
	int opt, null_fd;

	while ((opt = getopt(argc, argv, "s:")) != -1) {
		if (opt != 's' || (seconds = atof(optarg)) <= 0) {
			fprintf(stderr, "usage: ptreplay [-s SECONDS] FILE\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: ptreplay [-s SECONDS] FILE\n");
		return 2;
	}
	buf = slurp(argv[optind], &len);
	null_fd = open("/dev/null", O_WRONLY);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	sched_setaffinity(0, sizeof(one), &one);

	dec = decoder__new();
	out = output__new(null_fd, "/dev/null", OUTPUT_JSON, 0);
	start = now();
	/* Whole passes over the file until the time is used up. */
	do {
		for (size_t off = 0; off + sizeof(__u32) <= len;) {
			__u32 n;

			memcpy(&n, buf + off, sizeof(n));
			off += sizeof(n);
			if (n > len - off)
				break;
			decoder__record(dec, buf + off, n, output__event, out);
			off += n;
			records++;
		}
		/* The time-wait ends the live loop would emit as time passes. */
		decoder__tick(dec, UINT64_MAX, output__event, out);
		output__flush(out);
	} while (records && (elapsed = now() - start) < seconds);
	if (!records) {
		fprintf(stderr, "ptreplay: no records in %s\n", argv[optind]);
		return 1;
	}
	printf("{\"records\":%llu,\"seconds\":%.3f,\"records_per_s\":%.0f}\n", records, elapsed,
	       records / elapsed);
	output__free(out);
	decoder__free(dec);
	free(buf);
	return 0;
}
